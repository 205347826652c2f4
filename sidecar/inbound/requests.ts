// The inbound side's requests, once a connection is in (./listener.ts): each HTTP/1.1 request, WebSocket upgrade
// and HTTP/2 stream is normalized and authorized (../policy/enforce.ts), observed (counted, traced, logged), and
// forwarded to the app with the caller's identity in x-weft-peer-identity (any such header from outside dropped
// first) and the path policy saw; a denial is answered by the mesh and never reaches the app.

import type * as http2 from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { H1Request, H1Response } from '../http/h1-message.ts';
import type { H1Server } from '../http/h1-server.ts';
import type { AppConnector } from './app.ts';
import { relayH1 } from '../http/h1-proxy.ts';
import { h2RequestHeaders, meshReplyH2, RefusedStreamError, refuseStream, relayH2 } from '../http/h2-proxy.ts';
import { forwardHeaders, headerOf, PEER_IDENTITY_HEADER } from '../http/headers.ts';
import { answerOnSocket, goAway, H2_IDLE_MS, hardenedH1Server, hardenedH2Server, refuseAmbiguousHead, refuseUpgrade, type OnStreamClose } from '../http/servers.ts';
import { meshReply } from '../http/mesh-reply.ts';
import { forwardUpgrade } from '../http/upgrade.ts';
import type { PeerIdentity } from './mesh-tls.ts';
import { enforce, type EnforceInput, type Verdict } from '../policy/enforce.ts';
import { pathOf } from '../policy/normalize.ts';
import { putTraceContext } from '../telemetry/propagation.ts';
import { endH2Observation, noopObserver, type RequestObservation } from '../telemetry/observer.ts';
import type { InboundOptions } from './listener.ts';

/** The inbound side relays each stream to the app once, with no retry, timeout or kept body; the app's x-weft-* dropped. */
const FROM_APP = Object.freeze({ fromApp: true });

const TWO_HOSTS = (target: string): Verdict => ({ ok: false, target, status: 400, reason: 'bad-request', message: 'the mesh refused this request: a Host header that differs from :authority', decision: null, headers: {} });

export class InboundRequests {
  readonly #o: InboundOptions;
  readonly #app: AppConnector;
  /** the verified identity of the peer on a TLS socket; null for plaintext (PERMISSIVE) */
  readonly #peerOf: (socket: unknown) => PeerIdentity | null;
  readonly #h1: H1Server;
  /** made on the first HTTP/2 connection (see ../http/node-http.ts) */
  #h2Server: http2.Http2Server | null = null;
  /** HTTP/2 hides the TLS socket behind a proxy; the peer is attached to the session as it is created */
  readonly #sessionPeers = new WeakMap<http2.Http2Session, PeerIdentity>();
  #nextPeer: PeerIdentity | null = null;
  #nextSocket: Socket | null = null;
  /** each HTTP/2 session by the connection it runs on, to retire it (retire()) */
  readonly #socketSessions = new WeakMap<Socket, http2.ServerHttp2Session>();
  /** open WebSocket tunnels and what authorized them: a new config that would refuse the upgrade closes them */
  readonly #tunnels = new Map<Socket, EnforceInput>();
  /** open HTTP/2 sessions: draining sends each a GOAWAY, so that callers take new calls elsewhere */
  readonly #h2Sessions = new Set<http2.ServerHttp2Session>();
  #draining = false;
  /** the Mesh's streamIdleTimeout as the config says now (the servers read it once a second) */
  readonly #streamIdleMs = (): number => this.#o.config().streamIdleTimeoutMs;
  /** the same for every request (the command line's), made once */
  readonly #enforceOptions: { readonly policyHeader: boolean; readonly log: InboundOptions['log'] };

  constructor(opts: InboundOptions, app: AppConnector, peerOf: (socket: unknown) => PeerIdentity | null) {
    this.#o = opts;
    this.#enforceOptions = { policyHeader: opts.policyHeader ?? true, log: opts.log };
    this.#app = app;
    this.#peerOf = peerOf;
    this.#h1 = hardenedH1Server((req, res) => this.#onRequest(req, res), (req, socket, head) => this.#onUpgrade(req, socket, head), this.#streamIdleMs);
  }

  /** Serves HTTP/1.1 on a connection (TLS from a peer, or plaintext). */
  serveH1(socket: Socket): void {
    this.#h1.serve(socket);
  }

  /** Serves HTTP/2 on a connection; `peer` is its caller (null: plaintext h2c, unauthenticated). */
  serveH2(socket: Socket, peer: PeerIdentity | null): void {
    this.#nextPeer = peer;
    this.#nextSocket = socket;
    this.#h2().emit('connection', socket);
    this.#nextPeer = null;
    this.#nextSocket = null;
  }

  /**
   * Takes no new request on `socket` (its caller's certificate has expired), as a drain does: HTTP/1 closes after
   * the response in progress, HTTP/2 gets a GOAWAY and closes once its streams end. False if it serves neither (a
   * WebSocket tunnel: the caller closes it).
   */
  retire(socket: Socket): boolean {
    if (this.#tunnels.has(socket)) return false;
    if (this.#h1.closeConnection(socket)) return true;
    const session = this.#socketSessions.get(socket);
    if (!session) return false;
    goAway(session);
    return true;
  }

  /** Closes an HTTP/1 connection as a drain does (after the response in progress); false if it serves none. */
  closeH1(socket: Socket): boolean {
    return this.#h1.closeConnection(socket);
  }

  /** A new config: each open tunnel is authorized again, as its upgrade request would be now, and closed if refused. */
  applyConfig(): void {
    for (const [socket, input] of this.#tunnels) {
      if (enforce(this.#o.config(), input, this.#enforceOptions).ok) continue;
      this.#o.log({ msg: 'closing a WebSocket tunnel the new config does not allow', source: input.principal, method: input.method, target: input.target.slice(0, 200) });
      socket.destroy();
    }
  }

  /** Draining: idle HTTP/1 connections close, busy ones after their response; HTTP/2 sessions get a GOAWAY. */
  drain(): void {
    this.#draining = true;
    this.#o.log({ msg: 'draining', h2Sessions: this.#h2Sessions.size });
    this.#h1.closeIdleConnections();
    for (const session of this.#h2Sessions) goAway(session);
  }

  #appHeaders(req: H1Request): Record<string, string | string[]> {
    const headers = forwardHeaders(req.headers);
    // The app is spoken to in HTTP/1.1, which needs a Host: an HTTP/1.0 request without one gets this service's name.
    headers.host = req.headers.host ?? this.#o.config().self.name;
    const peer = this.#peerOf(req.socket);
    if (peer) headers[PEER_IDENTITY_HEADER] = peer.identity;
    return headers;
  }

  #observe(protocol: 'http' | 'http2' | 'grpc', method: string, target: string, header: (n: string) => string | string[] | undefined, peer: PeerIdentity | null, verdict: Verdict): RequestObservation {
    const config = this.#o.config();
    const obs = (this.#o.observer ?? (() => noopObserver))().request({
      direction: 'inbound', protocol, method, path: pathOf(target), header, source: peer?.identity ?? null, service: config.selfKey,
    });
    if (verdict.decision) obs.set({ policy: verdict.decision }); // (its allowed, policy and rule are what is read)
    return obs;
  }

  /** Normalize and authorize; the single gate every HTTP request and stream passes before the app. */
  #authorize(principal: PeerIdentity | null, method: string, target: string, header: (n: string) => string | string[] | undefined): Verdict {
    return enforce(this.#o.config(), { principal: principal?.identity ?? null, method, target, header }, this.#enforceOptions);
  }

  #onRequest(req: H1Request, res: H1Response): void {
    if (refuseAmbiguousHead(req, res)) return;
    const peer = this.#peerOf(req.socket);
    const header = (n: string) => headerOf(req.headers, n);
    const verdict = this.#authorize(peer, req.method, req.url, header);
    const obs = this.#observe('http', req.method, verdict.target, header, peer, verdict);
    res.observation = obs;
    if (!verdict.ok) {
      meshReply(res, verdict.status, verdict.reason!, verdict.message, verdict.headers);
      return;
    }
    const headers = this.#appHeaders(req);
    putTraceContext(headers, obs.propagate);
    relayH1(this.#app.pool, req, res, headers, { path: verdict.target, fromApp: true }, (err, status, _relayed, reached) => {
      if (!err || status !== 0) return;
      // app-unavailable only when no connection to the app was made: the caller's sidecar may then send the request
      // to another endpoint, as after a connect failure. A connection lost after the request went out is a reset.
      const app = `the app at ${this.#o.appHost}:${this.#o.appPort}`;
      if (reached) meshReply(res, 503, 'app-reset', `${app} closed the connection without answering: ${err.message}`);
      else meshReply(res, 503, 'app-unavailable', `${app} did not answer: ${err.message}`);
    });
  }

  #onUpgrade(req: H1Request, socket: Socket, head: Buffer): void {
    socket.on('error', () => {});
    if (refuseUpgrade(req, socket)) return;
    const peer = this.#peerOf(req.socket);
    const header = (n: string) => headerOf(req.headers, n);
    const input: EnforceInput = { principal: peer?.identity ?? null, method: req.method, target: req.url, header };
    const verdict = enforce(this.#o.config(), input, this.#enforceOptions);
    // An upgrade is observed as a request until its answer (a 101, or a refusal): counted, traced, logged.
    const obs = this.#observe('http', req.method, verdict.target, header, peer, verdict);
    const refuse = (status: number, reason: string, message: string, extra: Record<string, string> = {}) => (answerOnSocket(socket, status, reason, message, extra), obs.end({ status, reason }));
    if (!verdict.ok) return refuse(verdict.status, verdict.reason!, verdict.message, verdict.headers);
    req.url = verdict.target;
    const headers = this.#appHeaders(req);
    putTraceContext(headers, obs.propagate);
    forwardUpgrade(req, socket, head, headers, () => this.#app.connectTcp()).then(
      (status) => {
        obs.end({ status });
        if (status !== 101 || socket.destroyed) return;
        this.#tunnels.set(socket, input);
        socket.once('close', () => this.#tunnels.delete(socket));
      },
      (err: Error & { code?: string }) => {
        this.#o.log({ msg: 'upgrade to the app failed', error: err.message });
        if (err.code === 'WEFT_UPGRADE_TIMEOUT') refuse(504, 'timeout', `the app at ${this.#o.appHost}:${this.#o.appPort}: ${err.message}`);
        else refuse(503, 'app-unavailable', `the app at ${this.#o.appHost}:${this.#o.appPort} did not answer: ${err.message}`);
      },
    );
  }

  #h2(): http2.Http2Server {
    if (!this.#h2Server) {
      this.#h2Server = hardenedH2Server((stream, headers) => this.#onStream(stream, headers), H2_IDLE_MS, this.#streamIdleMs);
      this.#h2Server.on('session', (session) => {
        if (this.#nextPeer) this.#sessionPeers.set(session, this.#nextPeer);
        if (this.#nextSocket) this.#socketSessions.set(this.#nextSocket, session);
        this.#h2Sessions.add(session);
        session.once('close', () => this.#h2Sessions.delete(session));
        if (this.#draining) goAway(session); // a handshake that was under way when draining began
      });
    }
    return this.#h2Server;
  }

  /** Authorizes, observes and forwards one stream; returns what ends its observation when it closes. */
  #onStream(stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): OnStreamClose {
    const peer = stream.session ? (this.#sessionPeers.get(stream.session) ?? null) : null;
    const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
    // HTTP/2's host is :authority (the app gets that, not a Host): a condition on `host` reads it, as it reads
    // Host in HTTP/1.1. A Host beside it that names another has no single meaning (RFC 9113 §8.3.1): refused.
    const authority = headers[':authority'];
    const header = (n: string) => (n === 'host' && authority !== undefined ? authority : headerOf(headers, n));
    const method = String(headers[':method'] ?? '');
    const path = String(headers[':path'] ?? '');
    const twoHosts = authority !== undefined && headers.host !== undefined && String(headers.host).toLowerCase() !== authority.toLowerCase();
    const verdict = twoHosts ? TWO_HOSTS(path) : this.#authorize(peer, method, path, header);
    const obs = this.#observe(grpc ? 'grpc' : 'http2', method, verdict.target, header, peer, verdict);
    const closed = () => endH2Observation(obs, stream, grpc);
    if (!verdict.ok) {
      meshReplyH2(stream, verdict.status, verdict.reason!, verdict.message, grpc, verdict.headers);
      return closed;
    }
    const upstreamHeaders = h2RequestHeaders(headers, obs.propagate);
    if (peer) upstreamHeaders[PEER_IDENTITY_HEADER] = peer.identity;
    upstreamHeaders[':path'] = verdict.target;
    const session = this.#app.h2Session();
    relayH2(stream, session, upstreamHeaders, FROM_APP, (err) => {
      if (!err) return;
      // The app refused the stream (never processed it): so is the caller's, so that its sidecar may send it
      // again, to another endpoint if there is one. No connection to the app: app-unavailable, as over HTTP/1.
      if (err instanceof RefusedStreamError) refuseStream(stream);
      else if (this.#app.connected(session)) meshReplyH2(stream, 503, 'app-reset', `the app reset the stream without answering: ${err.message}`, grpc);
      else meshReplyH2(stream, 503, 'app-unavailable', `the app did not answer: ${err.message}`, grpc);
    });
    return closed;
  }
}
