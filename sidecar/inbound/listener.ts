// The inbound listener: terminates mTLS from peer sidecars, learns the caller's identity from its verified
// certificate, and hands each connection to the app as HTTP/1.1, HTTP/2 or raw TCP (by ALPN).
//
//   peer ─per-address cap─► TLS 1.3 (client cert required)─► identity check ─► revocation check ─► ALPN:
//       h2        → HTTP/2 streams to the app over h2c (gRPC, http2 services)
//       http/1.1  → HTTP/1.1 requests to the app over a keep-alive pool (WebSocket upgrades tunnelled on a 101)
//       weft-tcp  → a TCP connection to the app, bytes piped both ways
//   The protocols offered follow the service's: weft-tcp only for a `protocol: tcp` service, h2 and http/1.1
//   for any other. An HTTP service taking weft-tcp would let a caller past every method, path and header rule
//   (a connection is authorized once, on identity and port) and write its own x-weft-peer-identity.
//   PERMISSIVE mode only: a connection whose first byte is not a TLS handshake is plaintext (HTTP/1.1, h2c with
//   prior knowledge, or TCP for a tcp service), with no identity (so policy sees an unauthenticated caller).
//   When the mode turns STRICT, plaintext connections still open are closed (an HTTP/1.1 one after the
//   response in progress).

import type { H1Request, H1Response } from '../http/h1-message.ts';
import type { H1Server } from '../http/h1-server.ts';
import type * as http2 from 'node:http2';
import type { ServerHttp2Stream } from 'node:http2';
import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { ConnectionCap } from '../../connection-cap.ts';
import { normalizeSerial } from '../../ca/serial.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import { AppConnector } from './app.ts';
import { relayH1 } from '../http/h1-proxy.ts';
import { forwardH2, h2RequestHeaders, meshReplyH2, RefusedStreamError, refuseStream } from '../http/h2-proxy.ts';
import { forwardHeaders, headerOf, PEER_IDENTITY_HEADER } from '../http/headers.ts';
import { answerOnSocket, goAway, H2_IDLE_MS, hardenedH1Server, hardenedH2Server, refuseAmbiguousHead, refuseUpgrade } from '../http/servers.ts';
import { meshReply } from '../http/mesh-reply.ts';
import { forwardUpgrade } from '../http/upgrade.ts';
import { ALPN, serverTlsOptions, type PeerIdentity, type TlsMaterial } from './mesh-tls.ts';
import { replaySocket } from './replay-socket.ts';
import { isH2Preface, onFirstBytes } from '../http/first-bytes.ts';
import { enforce, type Verdict } from '../policy/enforce.ts';
import { pathOf } from '../policy/normalize.ts';
import { noopObserver, sentGrpcStatus, type Observer, type RequestObservation } from '../telemetry/observer.ts';
import { REASON_HEADER } from '../http/headers.ts';

export interface InboundOptions {
  readonly host: string;
  readonly port: number;
  readonly appHost: string;
  readonly appPort: number;
  readonly config: () => RuntimeConfig;
  readonly log: (event: Record<string, unknown>) => void;
  /** name the deciding policy and rule in a header on denials (x-weft-policy); default on */
  readonly policyHeader?: boolean;
  readonly observer?: () => Observer;
  /** open connections from one remote address; more are closed as they arrive (DEFAULT_MAX_CONNECTIONS_PER_ADDRESS) */
  readonly maxConnectionsPerAddress?: number;
}

/** A caller's sidecar pools up to 128 connections per endpoint (../outbound/peers.ts); several may share an address (NAT, loopback). */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 1024;

export class InboundListener {
  readonly #o: InboundOptions;
  readonly #net: net.Server;
  readonly #tls: tls.Server;
  readonly #h1: H1Server;
  /** made on the first HTTP/2 connection (see ../http/node-http.ts) */
  #h2Server: http2.Http2Server | null = null;
  readonly #app: AppConnector;
  readonly #cap: ConnectionCap;
  /** open peer connections and who is on the other end, to close them when a certificate is revoked */
  readonly #peers = new Map<TLSSocket, PeerIdentity>();
  readonly #plain = new Set<Socket>();
  /** HTTP/2 hides the TLS socket behind a proxy; the peer is attached to the session as it is created */
  readonly #sessionPeers = new WeakMap<http2.Http2Session, PeerIdentity>();
  #nextPeer: PeerIdentity | null = null;
  /** open HTTP/2 sessions: draining sends each a GOAWAY, so that callers take new calls elsewhere */
  readonly #h2Sessions = new Set<http2.ServerHttp2Session>();
  #draining = false;
  /** the Mesh's streamIdleTimeout as the config says now (the servers read it once a second) */
  readonly #streamIdleMs = (): number => this.#o.config().streamIdleTimeoutMs;

  constructor(opts: InboundOptions, material: TlsMaterial) {
    this.#o = opts;
    this.#app = new AppConnector(opts.appHost, opts.appPort);
    this.#cap = new ConnectionCap({
      limit: opts.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
      onOverLimit: (address, limit) => opts.log({ msg: 'refusing inbound connections from an address over its limit', address, limit }),
      onRefused: () => (opts.observer ?? (() => noopObserver))().inboundRefused('per_address_limit'),
    });
    this.#tls = tls.createServer({
      ...serverTlsOptions(material),
      requestCert: true,
      rejectUnauthorized: true,
      // The service's protocols, as the config says now; none in common ends the handshake (no_application_protocol).
      ALPNCallback: ({ protocols }) => {
        if (opts.config().tcpService) return protocols.includes(ALPN.tcp) ? ALPN.tcp : undefined;
        return protocols.includes(ALPN.h2) ? ALPN.h2 : protocols.includes(ALPN.http1) ? ALPN.http1 : undefined;
      },
      handshakeTimeout: 10_000,
    });
    this.#tls.on('secureConnection', (socket) => this.#onSecure(socket));
    this.#tls.on('tlsClientError', (err, socket) => {
      opts.log({ msg: 'inbound TLS handshake refused', error: err.message, remote: `${socket.remoteAddress}:${socket.remotePort}` });
      // With a listener, node leaves the socket open: a handshake that timed out (handshakeTimeout) or failed
      // would hold its descriptor until the peer left.
      socket.destroy();
    });
    this.#h1 = hardenedH1Server((req, res) => this.#onRequest(req, res), (req, socket, head) => this.#onUpgrade(req, socket, head), this.#streamIdleMs);
    this.#net = net.createServer({ noDelay: true }, (socket) => this.#onConnection(socket));
  }

  get address(): string {
    const a = this.#net.address() as net.AddressInfo;
    return `${a.address}:${a.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#net.once('error', reject);
      this.#net.listen(this.#o.port, this.#o.host, () => resolve());
    });
  }

  /** New certificate or bundle: new handshakes use it; open connections keep theirs. */
  setTls(material: TlsMaterial): void {
    this.#tls.setSecureContext(serverTlsOptions(material));
  }

  /** Closes every open connection whose client certificate is now revoked. */
  closeRevoked(revoked: ReadonlySet<string>): void {
    for (const [socket, peer] of this.#peers) {
      if (!revoked.has(peer.serial)) continue;
      this.#o.log({ msg: 'closing a connection: peer certificate revoked', identity: peer.identity, serial: peer.serial });
      socket.destroy();
    }
  }

  /** A new config: in STRICT mode no plaintext connection stays open (one made while PERMISSIVE is closed). */
  applyConfig(config: RuntimeConfig): void {
    if (config.mtlsMode !== 'STRICT' || this.#plain.size === 0) return;
    this.#o.log({ msg: 'mTLS is STRICT now: closing plaintext connections', connections: this.#plain.size });
    for (const socket of this.#plain) if (!this.#h1.closeConnection(socket)) socket.destroy();
  }

  /**
   * Stops accepting, lets in-flight requests finish until `deadlineMs`, then closes what is left. HTTP/2 peers get
   * a GOAWAY, so that their new calls go to other endpoints and their sessions close once the calls in flight end.
   */
  async close(deadlineMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#net.close(() => resolve()));
    this.#draining = true;
    this.#o.log({ msg: 'draining', h2Sessions: this.#h2Sessions.size });
    this.#h1.closeIdleConnections();
    for (const session of this.#h2Sessions) goAway(session);
    const timer = setTimeout(() => {
      for (const s of this.#peers.keys()) s.destroy();
      for (const s of this.#plain) s.destroy();
    }, deadlineMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
    this.#app.close();
  }

  #onConnection(socket: Socket): void {
    if (!this.#cap.admit(socket)) return; // over its address's cap: closed, before TLS or first-byte detection
    socket.on('error', () => {});
    if (this.#o.config().mtlsMode === 'STRICT') {
      this.#tls.emit('connection', socket);
      return;
    }
    // PERMISSIVE: look at the first byte. 0x16 starts a TLS handshake record; anything else is plaintext.
    onFirstBytes(socket, (first) => {
      if (first[0] === 0x16) {
        this.#tls.emit('connection', replaySocket(socket, first));
        return;
      }
      this.#plain.add(socket);
      socket.on('close', () => this.#plain.delete(socket));
      socket.unshift(first);
      if (this.#o.config().tcpService) {
        this.#tcpToApp(socket, null);
        return;
      }
      // h2c with prior knowledge: a gRPC client with no sidecar yet. Its session has no peer: unauthenticated.
      // (The session reads what was put back itself; a flowing socket would take its bytes.)
      if (isH2Preface(first)) {
        this.#h2().emit('connection', socket);
        return;
      }
      this.#h1.serve(socket);
      socket.resume();
    });
  }

  /** Opaque TCP: only the caller's identity (null: plaintext) and the port can be checked, once, now. */
  #tcpToApp(socket: Socket, peer: PeerIdentity | null): void {
    const config = this.#o.config();
    const decision = config.authorizer.authorize({ principal: peer?.identity ?? null, method: '', path: '', port: config.servicePort, header: () => undefined });
    const conn = (this.#o.observer ?? (() => noopObserver))().connection('inbound', config.selfKey, peer?.identity ?? null);
    if (!decision.allowed) {
      this.#o.log({ msg: 'connection denied', source: peer?.identity ?? null, policy: decision.policy, rule: decision.rule, reason: decision.reason });
      conn.end({ policy: decision.policy, rule: decision.rule });
      socket.destroy();
      return;
    }
    // A TLS socket counts plaintext bytes: what the peer's app sent, and what this app sent back.
    socket.once('close', () => (conn.bytes(socket.bytesRead, socket.bytesWritten), conn.end()));
    this.#app.pipeTcp(socket, (err) => this.#o.log({ msg: 'app refused a TCP connection', error: err.message }));
  }

  #onSecure(socket: TLSSocket): void {
    let peer: PeerIdentity;
    try {
      const cert = socket.getPeerX509Certificate();
      if (!cert) throw new Error('no client certificate');
      const id = spiffeIdOfCertificate(cert);
      const config = this.#o.config();
      const ownDomain = new URL(config.self.identity).host;
      if (id.trustDomain !== ownDomain) throw new Error(`peer ${id.uri} is not in trust domain ${ownDomain}`);
      const serial = normalizeSerial(cert.serialNumber);
      if (config.revokedSerials.has(serial)) throw new Error(`peer certificate ${serial} (${id.uri}) is revoked`);
      peer = { identity: id.uri, serial };
    } catch (err) {
      this.#o.log({ msg: 'inbound connection refused', error: (err as Error).message });
      socket.destroy();
      return;
    }
    // ALPNCallback chose by the service's protocol; a client that offered no ALPN at all is checked here.
    const tcp = socket.alpnProtocol === ALPN.tcp;
    if (tcp !== this.#o.config().tcpService) {
      this.#o.log({ msg: 'inbound connection refused', source: peer.identity, error: tcp ? 'weft-tcp to a service that is not protocol: tcp' : `protocol ${socket.alpnProtocol || 'none'} (not weft-tcp) to a protocol: tcp service` });
      socket.destroy();
      return;
    }
    this.#peers.set(socket, peer);
    socket.on('close', () => this.#peers.delete(socket));
    if (tcp) this.#tcpToApp(socket, peer);
    else if (socket.alpnProtocol === ALPN.h2) {
      this.#nextPeer = peer;
      this.#h2().emit('connection', socket);
      this.#nextPeer = null;
    } else this.#h1.serve(socket);
  }

  #peerOf(socket: unknown): PeerIdentity | null {
    return this.#peers.get(socket as TLSSocket) ?? null;
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
    return enforce(this.#o.config(), { principal: principal?.identity ?? null, method, target, header }, { policyHeader: this.#o.policyHeader ?? true, log: this.#o.log });
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
    for (const name in obs.propagate) headers[name] = obs.propagate[name]!;
    relayH1(this.#app.pool, req, res, headers, { path: verdict.target }, (err, status) => {
      if (err && status === 0) meshReply(res, 503, 'app-unavailable', `the app at ${this.#o.appHost}:${this.#o.appPort} did not answer: ${err.message}`);
    });
  }

  #onUpgrade(req: H1Request, socket: Socket, head: Buffer): void {
    socket.on('error', () => {});
    if (refuseUpgrade(req, socket)) return;
    const peer = this.#peerOf(req.socket);
    const header = (n: string) => headerOf(req.headers, n);
    const verdict = this.#authorize(peer, req.method, req.url, header);
    // An upgrade is observed as a request until its answer (a 101, or a refusal): counted, traced, logged.
    const obs = this.#observe('http', req.method, verdict.target, header, peer, verdict);
    const refuse = (status: number, reason: string, message: string, extra: Record<string, string> = {}) => (answerOnSocket(socket, status, reason, message, extra), obs.end({ status, reason }));
    if (!verdict.ok) return refuse(verdict.status, verdict.reason!, verdict.message, verdict.headers);
    req.url = verdict.target;
    const headers = this.#appHeaders(req);
    for (const name in obs.propagate) headers[name] = obs.propagate[name]!;
    forwardUpgrade(req, socket, head, headers, () => this.#app.connectTcp()).then(
      (status) => obs.end({ status }),
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
        this.#h2Sessions.add(session);
        session.once('close', () => this.#h2Sessions.delete(session));
        if (this.#draining) goAway(session); // a handshake that was under way when draining began
      });
    }
    return this.#h2Server;
  }

  #onStream(stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const peer = stream.session ? (this.#sessionPeers.get(stream.session) ?? null) : null;
    const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
    const verdict = this.#authorize(peer, String(headers[':method'] ?? ''), String(headers[':path'] ?? ''), (n) => headerOf(headers, n));
    const obs = this.#observe(grpc ? 'grpc' : 'http2', String(headers[':method'] ?? ''), verdict.target, (n) => headerOf(headers, n), peer, verdict);
    stream.once('close', () =>
      obs.end({
        status: Number(stream.sentHeaders?.[':status'] ?? 0),
        reason: (stream.sentHeaders?.[REASON_HEADER] ?? stream.sentTrailers?.[REASON_HEADER]) as string | undefined,
        grpcStatus: grpc ? sentGrpcStatus(stream) : undefined,
      }),
    );
    if (!verdict.ok) {
      meshReplyH2(stream, verdict.status, verdict.reason!, verdict.message, grpc, verdict.headers);
      return;
    }
    const upstreamHeaders = h2RequestHeaders(headers, { ...obs.propagate, ...(peer ? { [PEER_IDENTITY_HEADER]: peer.identity } : {}) });
    upstreamHeaders[':path'] = verdict.target;
    forwardH2(stream, this.#app.h2Session(), upstreamHeaders).catch((err: Error) => {
      // The app refused the stream (never processed it): so is the caller's, so that its sidecar may send it
      // again, to another endpoint if there is one.
      if (err instanceof RefusedStreamError) refuseStream(stream);
      else meshReplyH2(stream, 503, 'app-unavailable', `the app did not answer: ${err.message}`, grpc);
    });
  }
}
