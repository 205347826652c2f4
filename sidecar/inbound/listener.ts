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
//   Every connection is checked again while open: closed when its peer's certificate is revoked or expires, and a
//   TCP connection (or WebSocket tunnel, ./requests.ts) when a new config no longer allows it.
// What then happens to each HTTP request and stream (authorization, telemetry, the app) is ./requests.ts.

import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { ConnectionCap } from '../../connection-cap.ts';
import { normalizeSerial } from '../../ca/serial.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import type { RuntimeConfig } from '../config/runtime.ts';
import { AppConnector } from './app.ts';
import { isH2Preface, onFirstBytes } from '../http/first-bytes.ts';
import { ALPN, serverTlsOptions, type PeerIdentity, type TlsMaterial } from './mesh-tls.ts';
import { replaySocket } from './replay-socket.ts';
import { InboundRequests } from './requests.ts';
import type { Decision } from '../policy/authorizer.ts';
import { noopObserver, type Observer } from '../telemetry/observer.ts';

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

/** setTimeout's limit: a certificate valid longer than ~24 days (no mesh one is) gets no expiry timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class InboundListener {
  readonly #o: InboundOptions;
  readonly #net: net.Server;
  readonly #tls: tls.Server;
  /** what each connection's requests go through to the app (./requests.ts) */
  readonly #requests: InboundRequests;
  readonly #app: AppConnector;
  readonly #cap: ConnectionCap;
  /** open peer connections and who is on the other end, to close them when a certificate is revoked */
  readonly #peers = new Map<TLSSocket, PeerIdentity>();
  readonly #plain = new Set<Socket>();
  /** open opaque TCP connections and their caller (null: plaintext), authorized again when the config changes */
  readonly #tcp = new Map<Socket, PeerIdentity | null>();

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
    this.#requests = new InboundRequests(opts, this.#app, (socket) => this.#peers.get(socket as TLSSocket) ?? null);
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

  /**
   * A new config reaches what is open: TCP connections and WebSocket tunnels it no longer allows are closed (they
   * were authorized once, when they opened), and in STRICT mode no plaintext connection stays open (one made while
   * PERMISSIVE is closed).
   */
  applyConfig(config: RuntimeConfig): void {
    for (const [socket, peer] of this.#tcp) {
      // A service that is no longer `protocol: tcp` has HTTP rules no TCP stream can be held to.
      const decision = config.tcpService ? this.#authorizeTcp(config, peer) : null;
      if (decision?.allowed) continue;
      this.#o.log({ msg: 'closing a TCP connection the new config does not allow', source: peer?.identity ?? null, policy: decision?.policy ?? null, rule: decision?.rule ?? null, reason: decision?.reason ?? 'the service is no longer protocol: tcp' });
      socket.destroy();
    }
    this.#requests.applyConfig();
    if (config.mtlsMode !== 'STRICT' || this.#plain.size === 0) return;
    this.#o.log({ msg: 'mTLS is STRICT now: closing plaintext connections', connections: this.#plain.size });
    for (const socket of this.#plain) if (!this.#requests.closeH1(socket)) socket.destroy();
  }

  #authorizeTcp(config: RuntimeConfig, peer: PeerIdentity | null): Decision {
    return config.authorizer.authorize({ principal: peer?.identity ?? null, method: '', path: '', port: config.servicePort, header: () => undefined });
  }

  /**
   * Stops accepting, lets in-flight requests finish until `deadlineMs`, then closes what is left. HTTP/2 peers get
   * a GOAWAY, so that their new calls go to other endpoints and their sessions close once the calls in flight end.
   */
  async close(deadlineMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#net.close(() => resolve()));
    this.#requests.drain();
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
        this.#requests.serveH2(socket, null);
        return;
      }
      this.#requests.serveH1(socket);
      socket.resume();
    });
  }

  /** Opaque TCP: only the caller's identity (null: plaintext) and the port can be checked, once, now. */
  #tcpToApp(socket: Socket, peer: PeerIdentity | null): void {
    const config = this.#o.config();
    const decision = this.#authorizeTcp(config, peer);
    const conn = (this.#o.observer ?? (() => noopObserver))().connection('inbound', config.selfKey, peer?.identity ?? null);
    if (!decision.allowed) {
      this.#o.log({ msg: 'connection denied', source: peer?.identity ?? null, policy: decision.policy, rule: decision.rule, reason: decision.reason });
      conn.end({ policy: decision.policy, rule: decision.rule });
      socket.destroy();
      return;
    }
    this.#tcp.set(socket, peer);
    // A TLS socket counts plaintext bytes: what the peer's app sent, and what this app sent back.
    socket.once('close', () => (this.#tcp.delete(socket), conn.bytes(socket.bytesRead, socket.bytesWritten), conn.end()));
    this.#app.pipeTcp(socket, (err) => this.#o.log({ msg: 'app refused a TCP connection', error: err.message }));
  }

  #onSecure(socket: TLSSocket): void {
    let peer: PeerIdentity;
    let notAfterMs: number;
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
      notAfterMs = cert.validToDate.getTime();
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
    // The handshake checked the certificate's validity once; a keep-alive connection takes no new request after it
    // expires (the caller's pool reconnects with its current one). Requests and streams in progress finish, as in
    // a drain: a caller's pool may hold a busy connection a little past its certificate. A TCP connection or
    // WebSocket tunnel is closed: it cannot be re-authenticated (no renegotiation in TLS 1.3).
    const left = notAfterMs - Date.now();
    const expiry = left <= MAX_TIMER_MS ? setTimeout(() => {
      const gently = !tcp && this.#requests.retire(socket);
      this.#o.log({ msg: gently ? 'peer certificate expired: the connection takes no new request' : 'closing a connection: peer certificate expired', identity: peer.identity, serial: peer.serial });
      if (!gently) socket.destroy();
    }, Math.max(0, left)).unref() : null;
    socket.on('close', () => (this.#peers.delete(socket), expiry && clearTimeout(expiry)));
    if (tcp) this.#tcpToApp(socket, peer);
    else if (socket.alpnProtocol === ALPN.h2) this.#requests.serveH2(socket, peer);
    else this.#requests.serveH1(socket);
  }
}
