// The outbound side: the app speaks plain HTTP (or h2c, or TCP) to the sidecar, which opens mTLS to a peer.
//
//   main port (HTTP proxy): Host header or absolute URI names the service ("catalog", "catalog.default"),
//       so HTTP_PROXY works; a connection starting with the HTTP/2 preface is h2c, routed by :authority.
//   upstream ports (--upstream catalog=15101, as Consul does): everything on the port goes to that service,
//       in its protocol: HTTP/1.1, h2c (gRPC) or raw TCP.
//   each request: service → route rule → weighted subset → endpoint → mTLS to that peer, whose SPIFFE ID
//   must be one expected for the service; the mesh answers itself (with x-weft-reason) when it cannot.

import type { H1Request, H1Response } from '../http/h1-message.ts';
import type { H1Server } from '../http/h1-server.ts';
import type * as http2 from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import net, { type Socket } from 'node:net';
import { upstreamForHost, type RuntimeConfig, type UpstreamRuntime } from '../config/runtime.ts';
import { h2RequestHeaders, meshReplyH2 } from '../http/h2-proxy.ts';
import { forwardHeaders, headerOf } from '../http/headers.ts';
import { answerOnSocket, H2_IDLE_MS, hardenedH1Server, hardenedH2Server, refuseAmbiguousHead, refuseUpgrade, type OnStreamClose } from '../http/servers.ts';
import { meshReply, type MeshReason } from '../http/mesh-reply.ts';
import { forwardUpgrade } from '../http/upgrade.ts';
import { isH2Preface, onFirstBytes } from '../http/first-bytes.ts';
import { ALPN } from '../inbound/mesh-tls.ts';
import type { RequestFacts } from '../routing/route-table.ts';
import type { PeerConnector } from './peers.ts';
import { select } from './select.ts';
import { pathOf } from '../policy/normalize.ts';
import { callHttp } from './http-call.ts';
import { callH2 } from './h2-call.ts';
import type { ResilienceState } from '../resilience/state.ts';
import { putTraceContext } from '../telemetry/propagation.ts';
import { endH2Observation, noopObserver, type Observer, type RequestObservation } from '../telemetry/observer.ts';


export interface OutboundOptions {
  readonly host: string;
  readonly port: number;
  readonly config: () => RuntimeConfig;
  readonly peers: PeerConnector;
  readonly log: (event: Record<string, unknown>) => void;
  /** a per-upstream port: every connection goes to this service ("name.namespace") */
  readonly upstream?: string;
  readonly observer?: () => Observer;
  /** breakers, EWMA, budgets and pending counts, shared by every outbound listener of the sidecar */
  readonly state: ResilienceState;
}

function ignore(): void {}

/**
 * The destination_service of a request that names no service: a fixed value, never the caller's Host, so that
 * callers cannot grow the metric series (one per random host).
 */
const UNROUTED = 'unknown';

function failure(err: Error & { code?: string }): { status: number; reason: 'peer-identity-mismatch' | 'upstream-connect-failure'; message: string } {
  if (err.code === 'WEFT_PEER_IDENTITY') return { status: 502, reason: 'peer-identity-mismatch', message: err.message };
  return { status: 503, reason: 'upstream-connect-failure', message: `upstream connection failed: ${err.message}` };
}

export class OutboundListener {
  readonly #o: OutboundOptions;
  readonly #net: net.Server;
  readonly #h1: H1Server;
  /** made on the first HTTP/2 connection (see ../http/node-http.ts) */
  #h2Server: http2.Http2Server | null = null;
  readonly #sockets = new Set<Socket>();
  /** the Mesh's streamIdleTimeout as the config says now (the servers read it once a second) */
  readonly #streamIdleMs = (): number => this.#o.config().streamIdleTimeoutMs;

  constructor(opts: OutboundOptions) {
    this.#o = opts;
    this.#h1 = hardenedH1Server((req, res) => this.#onRequest(req, res), (req, socket, head) => this.#onUpgrade(req, socket, head), this.#streamIdleMs);
    this.#net = net.createServer({ noDelay: true }, (socket) => this.#onConnection(socket));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#net.once('error', reject);
      this.#net.listen(this.#o.port, this.#o.host, () => resolve());
    });
  }

  get port(): number {
    return (this.#net.address() as net.AddressInfo).port;
  }

  async close(deadlineMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#net.close(() => resolve()));
    this.#h1.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, deadlineMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }

  #fixed(): UpstreamRuntime | undefined {
    return this.#o.upstream ? this.#o.config().upstreams.get(this.#o.upstream) : undefined;
  }

  #onConnection(socket: Socket): void {
    socket.on('error', () => {});
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    const fixed = this.#fixed();
    if (this.#o.upstream && !fixed) {
      this.#o.log({ msg: 'upstream port for a service not in the config; closing', upstream: this.#o.upstream });
      socket.destroy();
      return;
    }
    const protocol = fixed?.service.protocol;
    if (protocol === 'tcp') {
      this.#pipeTcp(socket, fixed!);
      return;
    }
    if (protocol === 'grpc' || protocol === 'http2') {
      this.#h2().emit('connection', socket);
      return;
    }
    if (fixed) {
      this.#h1.serve(socket);
      return;
    }
    // The main port: HTTP/1.x, or h2c with prior knowledge (its first bytes are the HTTP/2 preface).
    onFirstBytes(socket, (first) => {
      socket.unshift(first);
      const h2 = isH2Preface(first);
      // The HTTP/2 session reads what was put back itself, then the socket's handle; a flowing JS stream would
      // take bytes meant for it. The HTTP/1 server reads them as 'data' events.
      if (h2) this.#h2().emit('connection', socket);
      else {
        this.#h1.serve(socket);
        socket.resume();
      }
    });
  }

  /** Which service an HTTP/1 request names, and its origin-form path; or the mesh's answer when it names none. */
  #target(req: H1Request): { upstream: UpstreamRuntime; host: string; path: string } | { status: 400 | 404; reason: MeshReason; message: string; path: string } {
    const url = req.url;
    let host: string;
    let path: string;
    if (/^https?:\/\//i.test(url)) {
      // Absolute form (HTTP_PROXY style): the authority in the URI wins over Host (RFC 9112 §3.2.2).
      const u = URL.parse(url);
      if (!u) return { status: 400, reason: 'bad-request', message: `the request target ${JSON.stringify(url.slice(0, 200))} is not a valid absolute URI`, path: url };
      host = u.host;
      path = `${u.pathname}${u.search}`;
    } else {
      host = req.headers.host ?? '';
      path = url;
    }
    const upstream = this.#fixed() ?? upstreamForHost(this.#o.config(), host);
    if (!upstream) return { status: 404, reason: 'no-route', message: `${host || '(no Host header)'} is not a service in this mesh; known: ${[...this.#o.config().hosts.keys()].join(', ')}`, path };
    return { upstream, host, path };
  }

  #facts(req: H1Request, path: string): RequestFacts {
    return { method: req.method, path: pathOf(path), header: (n) => headerOf(req.headers, n) };
  }

  #onRequest(req: H1Request, res: H1Response): void {
    if (refuseAmbiguousHead(req, res)) return;
    const target = this.#target(req);
    if ('status' in target) {
      // Names no service (or no valid target): the mesh answers, and the request is counted and logged all the same.
      res.observation = this.#observe(null, 'http', req.method, pathOf(target.path), (n) => headerOf(req.headers, n));
      return meshReply(res, target.status, target.reason, target.message);
    }
    const { upstream, host, path } = target;
    if (upstream.service.protocol !== 'http') {
      meshReply(res, 400, 'bad-request', `${upstream.key} speaks ${upstream.service.protocol}; use an upstream port (--upstream ${upstream.service.name}=PORT)${upstream.service.protocol === 'tcp' ? '' : ' or h2c'}`);
      return;
    }
    const facts = this.#facts(req, path);
    const obs = this.#observe(upstream, 'http', facts.method, facts.path, facts.header);
    res.observation = obs;
    const headers = forwardHeaders(req.headers);
    putTraceContext(headers, obs.propagate);
    headers.host = host;
    callHttp({ upstream, req, res, headers, target: path, facts, peers: this.#o.peers, state: this.#o.state, obs }, (err) => {
      this.#o.log({ msg: 'outbound call failed unexpectedly', upstream: upstream.key, error: err.stack ?? err.message });
      meshReply(res, 503, 'upstream-connect-failure', `internal error: ${err.message}`);
    });
  }

  #onUpgrade(req: H1Request, socket: Socket, head: Buffer): void {
    socket.on('error', () => {});
    if (refuseUpgrade(req, socket)) return;
    const target = this.#target(req);
    if ('status' in target) {
      const obs = this.#observe(null, 'http', req.method, pathOf(target.path), (n) => headerOf(req.headers, n));
      answerOnSocket(socket, target.status, target.reason, target.message);
      return obs.end({ status: target.status, reason: target.reason });
    }
    const { upstream, host, path } = target;
    const facts = this.#facts(req, path);
    // An upgrade is observed as a request until its answer (a 101, or a refusal): counted, traced, logged.
    const obs = this.#observe(upstream, 'http', facts.method, facts.path, facts.header);
    const refuse = (status: number, reason: MeshReason, message: string) => (answerOnSocket(socket, status, reason, message), obs.end({ status, reason }));
    const sel = select(upstream, facts);
    if (!sel.ok) return refuse(sel.status, sel.reason, sel.message);
    obs.set({ subset: sel.subset, endpoint: sel.address });
    const headers = forwardHeaders(req.headers);
    putTraceContext(headers, obs.propagate);
    headers.host = host;
    req.url = path;
    forwardUpgrade(req, socket, head, headers, () => this.#o.peers.connect(upstream, sel.address, ALPN.http1)).then(
      (status) => obs.end({ status }),
      (err: Error) => {
        if ((err as Error & { code?: string }).code === 'WEFT_UPGRADE_TIMEOUT') return refuse(504, 'timeout', `${upstream.key} at ${sel.address}: ${err.message}`);
        const f = failure(err);
        refuse(f.status, f.reason, f.message);
      },
    );
  }

  #h2(): http2.Http2Server {
    return (this.#h2Server ??= hardenedH2Server((stream, headers) => this.#onStream(stream, headers), H2_IDLE_MS, this.#streamIdleMs));
  }

  /** Routes and forwards one stream; returns what ends its observation when it closes. */
  #onStream(stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): OnStreamClose | void {
    stream.on('error', ignore);
    const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
    const authority = headers[':authority'];
    const upstream = this.#fixed() ?? upstreamForHost(this.#o.config(), authority);
    const method = String(headers[':method']);
    const bare = pathOf(String(headers[':path'] ?? '/'));
    const facts = { method, path: bare, header: (n: string) => headerOf(headers, n) };
    const obs = this.#observe(upstream ?? null, grpc ? 'grpc' : 'http2', method, bare, facts.header);
    if (!upstream) {
      meshReplyH2(stream, 404, 'no-route', `${authority ?? '(no authority)'} is not a service in this mesh`, grpc);
      return () => endH2Observation(obs, stream, grpc);
    }
    callH2({ upstream, stream, headers: h2RequestHeaders(headers, obs.propagate), facts, grpc, peers: this.#o.peers, state: this.#o.state, obs }, headers, (err) => {
      this.#o.log({ msg: 'outbound stream failed unexpectedly', upstream: upstream.key, error: err.stack ?? err.message });
      meshReplyH2(stream, 503, 'upstream-connect-failure', `internal error: ${err.message}`, grpc);
    });
    return () => endH2Observation(obs, stream, grpc);
  }

  /** Starts a request's observation; `upstream` null: the request names no service (it is observed as UNROUTED). */
  #observe(upstream: UpstreamRuntime | null, protocol: 'http' | 'http2' | 'grpc', method: string, path: string, header: (n: string) => string | string[] | undefined): RequestObservation {
    const obs = (this.#o.observer ?? (() => noopObserver))().request({ direction: 'outbound', protocol, method, path, header, source: this.#o.config().self.identity, service: upstream?.key ?? UNROUTED });
    if (upstream) obs.set({ destination: upstream.identity });
    return obs;
  }

  #pipeTcp(socket: Socket, upstream: UpstreamRuntime): void {
    socket.pause();
    const sel = select(upstream, { method: '', path: '', header: () => undefined });
    if (!sel.ok) {
      this.#o.log({ msg: 'tcp connection refused', upstream: upstream.key, reason: sel.message });
      socket.destroy();
      return;
    }
    this.#o.peers.connect(upstream, sel.address, ALPN.tcp).then(
      (peer) => {
        const conn = (this.#o.observer ?? (() => noopObserver))().connection('outbound', upstream.key, this.#o.config().self.identity);
        // As on the inbound side: bytes received from the app's connection, and bytes sent back on it.
        socket.once('close', () => (conn.bytes(socket.bytesRead, socket.bytesWritten), conn.end()));
        peer.on('error', () => socket.destroy());
        socket.on('error', () => peer.destroy());
        socket.pipe(peer);
        peer.pipe(socket);
        socket.resume();
      },
      (err: Error) => {
        this.#o.log({ msg: 'tcp upstream connection failed', upstream: upstream.key, error: err.message });
        socket.destroy();
      },
    );
  }
}
