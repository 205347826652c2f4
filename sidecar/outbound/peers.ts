// Connections to peer sidecars: mutual TLS 1.3 with this sidecar's certificate, the peer's SPIFFE ID checked
// against the identities expected for the service and its certificate against the revocation list; pooled and
// kept alive per endpoint, each closed when its peer's certificate is revoked or expires (./peer-connections.ts).

import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import { H1Pool } from '../http/h1-client.ts';
import { http2 as loadHttp2 } from '../http/node-http.ts';
import { H2Pool, PEER_MAX_CONCURRENT_STREAMS } from './h2-pool.ts';
import type { RuntimeConfig, UpstreamRuntime } from '../config/runtime.ts';
import { ALPN, type TlsMaterial } from '../inbound/mesh-tls.ts';
import { PeerConnections } from './peer-connections.ts';

export class PeerIdentityError extends Error {
  readonly code = 'WEFT_PEER_IDENTITY';
}

/**
 * Checks a peer's SPIFFE ID against what the service's config says now (`expected()`), not when the pool was made,
 * and its certificate against the revocation list: a stolen certificate for the right identity is still refused.
 */
function identityCheck(key: string, expected: () => ReadonlySet<string>, revoked: (serial: string) => boolean): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    try {
      const id = spiffeIdOfCertificate(cert.raw).uri;
      const ids = expected();
      if (!ids.has(id)) return new PeerIdentityError(`peer for ${key} presented ${id}; expected ${[...ids].join(' or ')}`);
      if (revoked(cert.serialNumber)) return new PeerIdentityError(`peer for ${key} presented ${id} in certificate ${cert.serialNumber}, which is revoked`);
      return undefined;
    } catch (err) {
      return new PeerIdentityError(`peer for ${key}: ${(err as Error).message}`);
    }
  };
}

const DEFAULT_CONNECTIONS = 128;
const maxConnections = (upstream: UpstreamRuntime) => upstream.trafficPolicy?.connectionPool.maxConnections ?? DEFAULT_CONNECTIONS;
const identityKey = (ids: ReadonlySet<string>) => [...ids].sort().join(' ');

/** "host:port" or "[v6]:port" as endpoints are written in snapshots. */
function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(address)!;
  return { host: m[1]!, port: Number(m[2]) };
}

function clientContext(m: TlsMaterial): tls.SecureContext {
  return tls.createSecureContext({ ca: m.bundlePem, cert: m.chainPem, key: m.keyPem, minVersion: 'TLSv1.3' });
}

/**
 * Pools by upstream key, then endpoint address. Every request looks its pool up here with the config's own strings,
 * whose hashes V8 keeps: a key joined per request was a new string to flatten and hash each time.
 */
class ByEndpoint<P> {
  readonly #byUpstream = new Map<string, Map<string, P>>();

  get(upstream: string, address: string): P | undefined {
    return this.#byUpstream.get(upstream)?.get(address);
  }

  set(upstream: string, address: string, pool: P): void {
    let byAddress = this.#byUpstream.get(upstream);
    if (!byAddress) this.#byUpstream.set(upstream, (byAddress = new Map()));
    byAddress.set(address, pool);
  }

  delete(upstream: string, address: string): void {
    const byAddress = this.#byUpstream.get(upstream);
    byAddress?.delete(address);
    if (byAddress?.size === 0) this.#byUpstream.delete(upstream);
  }

  /** A copy: entries may be deleted while it is walked. */
  entries(): [string, string, P][] {
    return [...this.#byUpstream].flatMap(([upstream, byAddress]) => [...byAddress].map(([address, pool]): [string, string, P] => [upstream, address, pool]));
  }

  values(): P[] {
    return this.entries().map((e) => e[2]);
  }
}

export class PeerConnector {
  /** one OpenSSL context per certificate, shared by every connection (not a PEM parse per connection) */
  #context: tls.SecureContext;
  #h1 = new ByEndpoint<H1Pool>();
  #h2 = new ByEndpoint<H2Pool>();
  /** `upstream|address` of the HTTP/2 pools whose peer is draining (sent GOAWAY); empty but for a peer stopping */
  readonly #draining = new Set<string>();
  /** each upstream's expected peer identities, as the last config applied says */
  #expected = new Map<string, ReadonlySet<string>>();
  /** every open connection by its peer's certificate, closed on its revocation or expiry */
  readonly #connections = new PeerConnections();

  constructor(material: TlsMaterial) {
    this.#context = clientContext(material);
  }

  /** New certificate or bundle: new connections use it; pools of the old one finish what they carry, then close. */
  setTls(material: TlsMaterial): void {
    this.#context = clientContext(material);
    const h1 = this.#h1;
    const h2 = this.#h2;
    this.#h1 = new ByEndpoint();
    this.#h2 = new ByEndpoint();
    this.#draining.clear();
    for (const p of h1.values()) void p.close();
    for (const s of h2.values()) s.close();
  }

  /**
   * A new config: pools follow it without being torn down. A pool takes its upstream's new connection limit in
   * place; when the identities a peer may present change, idle connections close (new ones are checked against
   * the new list, busy ones finish what they carry); a pool or HTTP/2 session to an endpoint or service no
   * longer in the config is closed. (Before, pools kept the settings they were made with until the next
   * certificate renewal.)
   */
  applyConfig(config: RuntimeConfig): void {
    this.#connections.setRevoked(config.revokedSerials);
    const before = this.#expected;
    this.#expected = new Map([...config.upstreams].map(([key, u]) => [key, u.expectedIdentities]));
    const changed = (key: string) => {
      const was = before.get(key);
      const now = this.#expected.get(key);
      return was !== undefined && now !== undefined && identityKey(was) !== identityKey(now);
    };
    const current = (service: string, address: string): UpstreamRuntime | null => {
      const upstream = config.upstreams.get(service);
      return upstream && upstream.endpoints.some((e) => e.address === address) ? upstream : null;
    };
    for (const [service, address, pool] of this.#h1.entries()) {
      const upstream = current(service, address);
      if (!upstream) {
        this.#h1.delete(service, address);
        void pool.close();
        continue;
      }
      pool.resize(maxConnections(upstream));
      if (changed(upstream.key)) pool.dropIdle();
    }
    for (const [service, address, pool] of this.#h2.entries()) {
      const upstream = current(service, address);
      if (upstream && !changed(upstream.key)) {
        pool.resize(maxConnections(upstream));
        continue;
      }
      this.#h2.delete(service, address);
      this.#draining.delete(`${service}|${address}`);
      pool.close();
    }
  }

  tlsOptions(upstream: UpstreamRuntime, alpn: string): tls.ConnectionOptions {
    return {
      secureContext: this.#context,
      minVersion: 'TLSv1.3',
      ALPNProtocols: [alpn],
      // Node's hostname check ignores URI SANs: the SPIFFE ID is checked here, whole.
      checkServerIdentity: identityCheck(upstream.key, () => this.#expected.get(upstream.key) ?? upstream.expectedIdentities, (serial) => this.#connections.isRevoked(serial)),
    };
  }

  h1Pool(upstream: UpstreamRuntime, address: string): H1Pool {
    let pool = this.#h1.get(upstream.key, address);
    if (!pool) {
      const { host, port } = splitAddress(address);
      const options = { ...this.tlsOptions(upstream, ALPN.http1), host, port };
      pool = new H1Pool({
        // TrafficPolicy connectionPool.maxConnections bounds the connections to each endpoint.
        connections: maxConnections(upstream),
        keepAliveMs: 30_000,
        connect: () => this.#connections.watch(tls.connect(options)),
        readyEvent: 'secureConnect',
      });
      this.#h1.set(upstream.key, address, pool);
    }
    return pool;
  }

  /** The HTTP/2 sessions to an endpoint (./h2-pool.ts): one, or more when one is at the peer's stream limit. */
  h2Pool(upstream: UpstreamRuntime, address: string): H2Pool {
    let pool = this.#h2.get(upstream.key, address);
    if (!pool) {
      const key = `${upstream.key}|${address}`;
      const options = { ...this.tlsOptions(upstream, ALPN.h2), peerMaxConcurrentStreams: PEER_MAX_CONCURRENT_STREAMS };
      // TrafficPolicy connectionPool.maxConnections bounds the sessions to each endpoint, as it does HTTP/1 connections.
      pool = new H2Pool({
        address,
        connections: maxConnections(upstream),
        connect: () => {
          const session = loadHttp2().connect(`https://${address}`, options);
          // (The session's 'connect' event carries its TLS socket, before the handshake's end is seen.)
          session.once('connect', (_session, socket) => void this.#connections.watch(socket as tls.TLSSocket));
          return session;
        },
        onDraining: (draining) => {
          if (this.#h2.get(upstream.key, address) !== pool) return; // a pool already let go (a new certificate)
          if (draining) this.#draining.add(key);
          else this.#draining.delete(key);
        },
      });
      this.#h2.set(upstream.key, address, pool);
    }
    return pool;
  }

  /**
   * `open` without the endpoints whose peer sent GOAWAY (draining, as a sidecar stopping does), unless that leaves
   * none: new calls go to the others instead of to a listener that is closing, until the push that removes it.
   */
  h2Candidates<T extends { readonly address: string }>(upstream: UpstreamRuntime, open: readonly T[]): readonly T[] {
    if (this.#draining.size === 0 || open.length < 2) return open;
    const ready = open.filter((e) => !this.#draining.has(`${upstream.key}|${e.address}`));
    return ready.length > 0 ? ready : open;
  }

  /** A fresh mTLS connection (TCP services, WebSocket tunnels). */
  connect(upstream: UpstreamRuntime, address: string, alpn: string): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const socket = this.#connections.watch(tls.connect({ ...this.tlsOptions(upstream, alpn), ...splitAddress(address) }));
      socket.once('secureConnect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  }

  close(): void {
    for (const p of this.#h1.values()) void p.close();
    for (const s of this.#h2.values()) s.close();
  }
}
