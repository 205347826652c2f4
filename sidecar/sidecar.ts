// The sidecar: identity first, then a first config, then the listeners; the app starts only once all are up.
//
//   start:  admin port (503 on /ready) → certificate for the token → stream from the control plane → first
//           snapshot applied → inbound and outbound listeners → ready
//   config: each snapshot is compiled (or NACKed, keeping the last good one); a new trust bundle or certificate
//           swaps TLS contexts for new connections; revoked peers' open connections are closed
//   stop:   stop accepting, drain in-flight requests up to a deadline

import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { WeftError } from '../errors.ts';
import { AdminServer } from './admin/server.ts';
import { compileSnapshot, type RuntimeConfig } from './config/runtime.ts';
import { ControlPlaneAgent } from './control/agent.ts';
import { SvidSource, type Svid } from './identity/svid-source.ts';
import { InboundListener } from './inbound/listener.ts';
import type { TlsMaterial } from './inbound/mesh-tls.ts';
import { OutboundListener } from './outbound/listener.ts';
import { PeerConnector } from './outbound/peers.ts';
import { IdleCompactor } from './memory.ts';
import { withoutUserinfo } from './telemetry/redact.ts';
import { MeshObserver } from './telemetry/mesh-observer.ts';
import { ResilienceState } from './resilience/state.ts';

export interface UpstreamPort {
  /** "catalog" (this namespace) or "catalog.other" */
  readonly service: string;
  readonly port: number;
}

export interface SidecarOptions {
  readonly controlPlane: { readonly url: string; readonly ca: string; readonly caSource?: string; readonly serverIdentity: string };
  readonly token: string;
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly appHost: string;
  readonly appPort: number;
  /** where peers reach this sidecar; the inbound listens here */
  readonly inboundHost: string;
  readonly inboundPort: number;
  readonly outboundHost: string;
  readonly outboundPort: number;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly upstreams: readonly UpstreamPort[];
  readonly drainMs?: number;
  readonly renewEveryMs?: number;
  /** name the deciding policy and rule on denials (x-weft-policy); default true */
  readonly policyHeader?: boolean;
  /** open inbound connections from one remote address; more are closed as they arrive (default 1024) */
  readonly maxInboundConnectionsPerAddress?: number;
  readonly log: (event: Record<string, unknown>) => void;
}

/**
 * A port to listen on: the one given, or (for 0) a free one found now, so it can be registered before serving.
 * A port found is held (bound, every connection closed at once, as a port nobody serves refuses them) until
 * `release` just before the listener binds it: released early, another process could take it meanwhile (the
 * bootstrap and the first config take a second or so), and the listener would then fail with EADDRINUSE.
 */
async function reservePort(host: string, port: number): Promise<{ port: number; release(): Promise<void> }> {
  if (port !== 0) return { port, release: async () => {} };
  const probe = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, host, () => resolve());
  });
  // A sidecar that cannot start (a refused registration) must still exit: the held port keeps nothing alive.
  probe.unref();
  return { port: (probe.address() as net.AddressInfo).port, release: () => new Promise<void>((resolve) => probe.close(() => resolve())) };
}

/** The snapshot as /config shows it: a tracing endpoint without its user and password. */
function shown(body: RuntimeConfig['body']): RuntimeConfig['body'] {
  const tracing = body.mesh.tracing;
  if (!tracing || withoutUserinfo(tracing.endpoint) === tracing.endpoint) return body;
  return { ...body, mesh: { ...body.mesh, tracing: { ...tracing, endpoint: withoutUserinfo(tracing.endpoint) } } };
}

export class Sidecar {
  readonly #o: SidecarOptions;
  readonly svid: SvidSource;
  #agent: ControlPlaneAgent | null = null;
  #admin: AdminServer;
  #config: RuntimeConfig | null = null;
  #inbound: InboundListener | null = null;
  #outbound: OutboundListener[] = [];
  #peers: PeerConnector | null = null;
  #ready = false;
  /** telemetry for every request and connection: metrics, access log, and traces while the config asks for them */
  readonly observer: MeshObserver;
  readonly #resilience = new ResilienceState({
    onBreaker: (service, endpoint, state) => {
      this.#o.log({ msg: `circuit breaker ${state}`, upstream: service, endpoint });
      this.observer.breakerState(service, endpoint, state);
    },
    onEjected: (service, endpoint, ms) => this.#o.log({ msg: 'outlier ejected', upstream: service, endpoint, forMs: ms }),
  });
  #stage = 'starting';
  readonly #compactor: IdleCompactor;
  ports = { inbound: 0, outbound: 0, admin: 0, upstreams: {} as Record<string, number> };

  constructor(opts: SidecarOptions) {
    this.#o = opts;
    this.svid = new SvidSource({ controlPlane: opts.controlPlane, token: opts.token, renewEveryMs: opts.renewEveryMs, log: opts.log });
    this.observer = new MeshObserver({
      service: opts.service,
      namespace: opts.namespace,
      labels: opts.labels,
      config: () => this.#config,
      state: () => ({ ready: this.#ready, configVersion: this.#config?.version ?? null, certificateNotAfter: this.svid.ready ? this.svid.current.notAfter : null }),
      log: opts.log,
    });
    this.#compactor = new IdleCompactor(this.observer);
    this.#admin = new AdminServer({
      notReady: () => (this.#ready ? null : this.#stage),
      config: () => (this.#config ? { version: this.#config.version, snapshot: shown(this.#config.body) } : { version: null }),
      certs: () => this.#certs(),
      metrics: () => this.observer.metrics(),
    });
  }

  get ready(): boolean {
    return this.#ready;
  }

  get config(): RuntimeConfig | null {
    return this.#config;
  }

  async start(): Promise<void> {
    const o = this.#o;
    this.ports.admin = await this.#admin.listen(o.adminPort, o.adminHost);
    this.#stage = 'waiting for a certificate';
    const svid = await this.svid.bootstrap();
    const inboundPort = await reservePort(o.inboundHost, o.inboundPort);
    this.ports.inbound = inboundPort.port;
    this.#stage = 'waiting for the first config from the control plane';
    this.#agent = new ControlPlaneAgent({
      controlPlane: o.controlPlane,
      svid: this.svid,
      registration: { service: o.service, namespace: o.namespace, labels: o.labels, address: `${o.inboundHost}:${this.ports.inbound}`, admin: `${o.adminHost.includes(':') ? `[${o.adminHost}]` : o.adminHost}:${this.ports.admin}` },
      apply: (version, body) => this.#apply(version, body),
      retag: (version) => {
        if (this.#config) this.#config = { ...this.#config, version };
      },
      log: o.log,
    });
    this.#agent.start();
    await this.#agent.firstConfig;
    // With tracing configured, the first request is traced too: OpenTelemetry is loaded before the listeners open.
    await this.observer.applyConfig(this.#config!);

    // The certificate in force now: a renewal while the first config was awaited replaced the bootstrap one.
    const material = this.#material(this.svid.current);
    this.#peers = new PeerConnector(material);
    this.#peers.applyConfig(this.#config!);
    const config = () => this.#config!;
    this.#inbound = new InboundListener({ host: o.inboundHost, port: this.ports.inbound, appHost: o.appHost, appPort: o.appPort, config, log: o.log, policyHeader: o.policyHeader, observer: () => this.observer, maxConnectionsPerAddress: o.maxInboundConnectionsPerAddress }, material);
    // From here on (no await since the material was taken) a renewal reaches the peers and the inbound.
    this.svid.on('rotated', (s) => this.#retls(s));
    await inboundPort.release();
    await this.#inbound.listen();
    const main = new OutboundListener({ host: o.outboundHost, port: o.outboundPort, config, peers: this.#peers, log: o.log, observer: () => this.observer, state: this.#resilience });
    await main.listen();
    this.ports.outbound = main.port;
    this.#outbound.push(main);
    for (const u of o.upstreams) {
      const key = u.service.includes('.') ? u.service : `${u.service}.${o.namespace}`;
      const l = new OutboundListener({ host: o.outboundHost, port: u.port, config, peers: this.#peers, log: o.log, upstream: key, observer: () => this.observer, state: this.#resilience });
      await l.listen();
      this.ports.upstreams[u.service] = l.port;
      this.#outbound.push(l);
    }
    // Start-up's garbage goes back to the OS before anything is served (./memory.ts).
    const compactedMs = this.#compactor.compact();
    this.#compactor.start();
    this.#ready = true;
    this.#stage = 'ready';
    // Save compiled modules now, not only at a clean exit: the next sidecar on this host then starts without
    // loading the TypeScript stripper (~17 MB), even if this one is killed. (A no-op without NODE_COMPILE_CACHE.)
    process.getBuiltinModule('node:module').flushCompileCache();
    o.log({ msg: 'sidecar ready', identity: svid.identity, inbound: this.ports.inbound, outbound: this.ports.outbound, admin: this.ports.admin, upstreams: this.ports.upstreams, configVersion: this.#config?.version, compactedMs });
  }

  /** Stops accepting, drains in-flight requests for up to `drainMs`, closes the rest. */
  async stop(): Promise<void> {
    this.#ready = false;
    this.#stage = 'draining';
    this.#compactor.stop();
    const deadline = this.#o.drainMs ?? 5000;
    await Promise.all([this.#inbound?.close(deadline), ...this.#outbound.map((l) => l.close(deadline))]);
    this.#agent?.stop();
    this.svid.stop();
    this.#peers?.close();
    await this.#admin.close();
    await this.observer.close();
  }

  #material(svid: Svid): TlsMaterial {
    return { keyPem: svid.keyPem, chainPem: svid.chainPem, bundlePem: this.#config?.trustBundle ?? svid.bundlePem };
  }

  #retls(svid: Svid): void {
    const material = this.#material(svid);
    this.#inbound?.setTls(material);
    this.#peers?.setTls(material);
  }

  #apply(version: number, body: Parameters<typeof compileSnapshot>[1]): void {
    const ignored: string[] = [];
    const next = compileSnapshot(version, body, ignored);
    if (ignored.length) this.#o.log({ msg: 'snapshot holds fields this sidecar does not know (a newer control plane); ignoring them', version, fields: ignored.slice(0, 20) });
    const identity = this.svid.current.identity;
    if (next.self.identity !== identity) {
      throw new WeftError('WEFT_AUTH_FORBIDDEN', `snapshot is for ${next.self.identity} but this sidecar is ${identity}`);
    }
    const bundleChanged = this.#config?.trustBundle !== next.trustBundle;
    this.#config = next;
    if (bundleChanged && this.#inbound) this.#retls(this.svid.current);
    this.#inbound?.closeRevoked(next.revokedSerials);
    this.#inbound?.applyConfig(next);
    this.#peers?.applyConfig(next);
    this.#resilience.prune(next);
    void this.observer.applyConfig(next);
  }

  #certs(): unknown {
    if (!this.svid.ready) return { identity: null, renewal: this.svid.renewal };
    const s = this.svid.current;
    const roots = (this.#config?.trustBundle ?? s.bundlePem).match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    return {
      identity: s.identity,
      serial: s.serial,
      notBefore: s.notBefore.toISOString(),
      notAfter: s.notAfter.toISOString(),
      renewal: s && this.svid.renewal,
      bundle: roots.map((pem) => {
        const c = new X509Certificate(pem);
        return { subject: c.subject.replace(/\n/g, ', '), fingerprint: c.fingerprint256, notAfter: c.validToDate.toISOString() };
      }),
    };
  }
}
