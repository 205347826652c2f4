// The control plane: loads config and the CA, serves the identity, sidecar and operator APIs, pushes snapshots.

import type { FSWatcher } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WeftError } from '../errors.ts';
import { writeFileAtomic } from '../ca/atomic-file.ts';
import type { CertificateAuthority, IssuanceRecord } from '../ca/authority.ts';
import { CaStore } from '../ca/store.ts';
import { workloadId } from '../ca/spiffe-id.ts';
import type { AuthContext } from './api/authenticate.ts';
import { unknownServiceWarning, type StatusReport } from './api/operator.ts';
import { apiRoutes } from './api/routes.ts';
import { controlPlaneServer, type ServerLimits } from './api/server.ts';
import { MetricsListener } from './api/metrics-listener.ts';
import { ControlPlaneMetrics } from './metrics.ts';
import { SidecarApi } from './api/sidecars.ts';
import { liveMesh } from './config/live.ts';
import { loadMeshConfig, parseMeshConfigOrThrow } from './config/load.ts';
import { ConfigError, formatIssue } from './config/issues.ts';
import type { MeshConfig } from './config/types.ts';
import { BootstrapTokens } from './identity/tokens.ts';
import { SnapshotPusher } from './push/pusher.ts';
import { pushBuilder } from './push/build.ts';
import { describeSidecar, Registry } from './registry.ts';
import { Revocations } from './revocations.ts';
import { serviceIdentity } from './snapshot/build.ts';
import { SYSTEM_NAMESPACE, workloadNamespace } from './config/names.ts';
import { StateDir } from './state-dir.ts';
import { StateLock } from './state-lock.ts';
import { OwnSvid } from './own-svid.ts';
import { watchConfigFile, watchFile, type ConfigFileEvent } from './file-watch.ts';

export const CONTROL_PLANE_SA = { namespace: SYSTEM_NAMESPACE, serviceAccount: 'control-plane' };
export const OPERATOR_SA = { namespace: SYSTEM_NAMESPACE, serviceAccount: 'operator' };
/** The control plane's log: one JSON line per event on stderr. */
export const jsonLog = (e: Record<string, unknown>) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), component: 'control-plane', ...e }) + '\n');

export interface ControlPlaneOptions {
  readonly stateDir: string;
  /** the mesh config file, watched for changes; without it, the last config applied (kept in the state dir) */
  readonly configPath?: string;
  readonly host?: string;
  readonly port?: number;
  readonly clock?: () => number;
  /** a sidecar silent (no heartbeat, ACK or stream) for this long is removed; default 15 s */
  readonly heartbeatTimeoutMs?: number;
  readonly keepaliveMs?: number;
  /** a connection with nothing going on (no request, no stream writing) for this long is closed; default 60 s */
  readonly idleTimeoutMs?: number;
  /** open connections from one address (a node's sidecars share theirs); more are refused; default 256 */
  readonly maxConnectionsPerClient?: number;
  readonly log?: (event: Record<string, unknown>) => void;
  /** told of each change of the watched config file: applied (its version), or refused (why) */
  readonly onConfigFile?: (event: ConfigFileEvent) => void;
  /** where to serve GET /metrics over plain HTTP (port 0 picks a free one); none without it */
  readonly metrics?: { readonly host: string; readonly port: number };
}

/** Where a running control plane listens, written to the state dir so the CLI finds it. */
export interface ControlPlaneInfo {
  readonly url: string;
  readonly identity: string;
  readonly pid: number;
  /** http://host:port/metrics, when it serves metrics */
  readonly metricsUrl?: string;
}

export class ControlPlane {
  readonly state: StateDir;
  readonly identity: string;
  #config: MeshConfig;
  #store: CaStore;
  #ca: CertificateAuthority;
  readonly #clock: () => number;
  readonly #log: (event: Record<string, unknown>) => void;
  readonly #onConfigFile: ControlPlaneOptions['onConfigFile'];
  readonly #tokens: BootstrapTokens;
  readonly #revocations: Revocations;
  readonly #registry: Registry;
  readonly #pusher: SnapshotPusher;
  readonly #sidecars: SidecarApi;
  readonly #auth: AuthContext & { adminToken: string };
  readonly #configPath: string | undefined;
  readonly #lock: StateLock;
  readonly #ownSvid: OwnSvid;
  readonly #metrics: ControlPlaneMetrics;
  #metricsListener: MetricsListener | null = null;
  #configVersion: number;
  #server: http2.Http2SecureServer | null = null;
  #timers: NodeJS.Timeout[] = [];
  #watchers: FSWatcher[] = [];
  #url = '';

  private constructor(opts: ControlPlaneOptions, state: StateDir, config: MeshConfig, store: CaStore, lock: StateLock) {
    this.state = state;
    this.#lock = lock;
    this.#config = config;
    this.#store = store;
    this.#clock = opts.clock ?? Date.now;
    this.#onConfigFile = opts.onConfigFile;
    this.#log = opts.log ?? jsonLog;
    this.#configPath = opts.configPath;
    this.#ca = store.authority({ clock: this.#clock });
    const td = config.mesh.trustDomain;
    this.identity = workloadId(td, CONTROL_PLANE_SA.namespace, CONTROL_PLANE_SA.serviceAccount).uri;
    this.#tokens = new BootstrapTokens({ state, trustDomain: td, clock: this.#clock });
    this.#revocations = new Revocations(state.path('revocations.json'), this.#clock());
    this.#ownSvid = new OwnSvid({ identity: this.identity, authority: () => this.#ca, install: (own) => this.#server?.setSecureContext({ key: own.key, cert: own.cert, ca: own.ca }), clock: this.#clock, log: this.#log });
    this.#auth = {
      trustDomain: td,
      adminToken: state.adminToken(),
      operatorIdentities: new Set([workloadId(td, OPERATOR_SA.namespace, OPERATOR_SA.serviceAccount).uri]),
      isRevoked: (serial) => this.#revocations.has(serial),
      now: () => this.#clock(),
    };
    this.#metrics = new ControlPlaneMetrics({ sidecars: () => this.#registry.list(), services: () => this.#config.services, snapshotVersion: () => this.#pusher.version, configVersion: () => this.#configVersion });
    this.#pusher = new SnapshotPusher({
      // Versions start from the clock so they keep increasing across restarts.
      initialVersion: this.#clock(),
      observer: this.#metrics,
      build: pushBuilder({
        config: () => this.#config,
        endpoints: (s, ns) => this.#registry.endpoints(s, ns),
        trustBundle: () => this.#store.bundle.toPem(),
        revokedSerials: () => [...this.#revocations.serials],
      }),
    });
    this.#configVersion = this.#pusher.version;
    this.#registry = new Registry({ onEndpointsChange: () => this.#pusher.schedule() });
    this.#sidecars = new SidecarApi({
      auth: this.#auth,
      registry: this.#registry,
      pusher: this.#pusher,
      clock: this.#clock,
      expectedIdentity: (service, namespace) => serviceIdentity(this.#config, service, namespace),
      keepaliveMs: opts.keepaliveMs ?? 10_000,
      log: this.#log,
      observer: this.#metrics,
    });
  }

  /**
   * Takes the state dir (one control plane per state dir: ./state-lock.ts), loads state (creating the CA on first
   * start), then listens. Fails whole if the config or CA is bad or the port is taken, and then leaves the state dir
   * as it was: what this start made is removed, and the config is saved only once it listens.
   */
  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const state = new StateDir(opts.stateDir);
    const madeDir = state.ensure();
    const lock = StateLock.acquire(state.path('control-plane.lock'), state.root, opts.log ?? jsonLog);
    const made = state.absent(['ca', 'token.key', 'admin-token']);
    let cp: ControlPlane | undefined;
    try {
      const [text, file] = state.readConfig(opts.configPath);
      const config = parseMeshConfigOrThrow(text, file);
      const caDir = state.path('ca');
      const store = CaStore.exists(caDir) ? CaStore.open(caDir) : await CaStore.init(caDir, { trustDomain: config.mesh.trustDomain });
      if (store.trustDomain !== config.mesh.trustDomain) {
        throw new WeftError('WEFT_CONFIG_INVALID', `${file}: Mesh trustDomain is ${config.mesh.trustDomain} but the CA in ${caDir} is for ${store.trustDomain}; the trust domain cannot change under a running CA`);
      }
      cp = new ControlPlane(opts, state, config, store, lock);
      // Bound first: a taken metrics port fails the start before the API's listening writes anything.
      if (opts.metrics) await (cp.#metricsListener = new MetricsListener(() => cp!.#metrics.text())).listen(opts.metrics.host, opts.metrics.port);
      await cp.#listen(opts.host ?? '127.0.0.1', opts.port ?? 15010, { idleTimeoutMs: opts.idleTimeoutMs ?? 60_000, maxConnectionsPerClient: opts.maxConnectionsPerClient ?? 256, log: cp.#log });
      cp.#startTimers(opts.heartbeatTimeoutMs ?? 15_000);
      cp.#watch();
      return cp;
    } catch (err) {
      await cp?.stop();
      state.remove(made, madeDir);
      lock.release();
      throw err;
    }
  }

  get url(): string {
    return this.#url;
  }

  /** http://host:port/metrics, or null when it serves no metrics */
  get metricsUrl(): string | null {
    return this.#metricsListener?.url || null;
  }

  get config(): MeshConfig {
    return this.#config;
  }

  get bundlePem(): string {
    return this.#store.bundle.toPem();
  }

  /**
   * Validates and applies a whole config; on any error throws them all and the last good config stays live.
   * Warnings (./config/warnings.ts: allowed, but most often typos) come back with the version, formatted.
   */
  apply(text: string, file: string): { version: number; summary: Record<string, number>; warnings: string[] } {
    const loaded = loadMeshConfig(text, file, liveMesh(this.#config.mesh.trustDomain, this.#registry.list()));
    if (!loaded.ok) {
      this.#metrics.configApplied(false);
      throw new ConfigError(loaded.errors);
    }
    const config = loaded.config;
    writeFileAtomic(this.state.path('config.yaml'), text, 0o600);
    this.#config = config;
    this.#pusher.pushNow();
    this.#configVersion = this.#pusher.version;
    this.#metrics.configApplied(true);
    return {
      version: this.#configVersion,
      summary: { services: config.services.length, routes: config.routes.length, authorizationPolicies: config.authorizationPolicies.length, trafficPolicies: config.trafficPolicies.length },
      warnings: loaded.warnings.map(formatIssue),
    };
  }

  status(): StatusReport {
    const mem = process.memoryUsage();
    return {
      version: this.#pusher.version,
      configVersion: this.#configVersion,
      controlPlane: { identity: this.identity, rssMb: Math.round(mem.rss / 2 ** 20), heapUsedMb: Math.round(mem.heapUsed / 2 ** 20), heapTotalMb: Math.round(mem.heapTotal / 2 ** 20), externalMb: Math.round(mem.external / 2 ** 20) },
      sidecars: this.#registry.list().map(describeSidecar),
    };
  }

  async stop(): Promise<void> {
    for (const t of this.#timers) clearTimeout(t);
    this.#pusher.stop();
    this.#ownSvid.stop();
    for (const w of this.#watchers) w.close();
    this.#sidecars.closeAll();
    await this.#metricsListener?.close();
    const server = this.#server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Sessions and connections (sidecar streams) keep a server open; close them so stop() returns promptly.
        for (const s of this.#sessions) s.destroy();
        for (const s of this.#http1) s.destroy();
      });
    }
    this.#lock.release();
  }

  readonly #sessions = new Set<http2.ServerHttp2Session>();
  /** HTTP/1.1 connections (sidecars use HTTP/1.1: control-plane/client.ts) */
  readonly #http1 = new Set<TLSSocket>();

  async #listen(host: string, port: number, limits: ServerLimits): Promise<void> {
    // Journaled once listening: a start that cannot bind hands this certificate to no one.
    const unjournaled: IssuanceRecord[] = [];
    const own = await this.#ownSvid.issue(this.#store.authority({ clock: this.#clock, onIssue: (r) => unjournaled.push(r) }));
    const handler = apiRoutes({
      auth: this.#auth,
      log: this.#log,
      clock: this.#clock,
      tokens: this.#tokens,
      sidecars: this.#sidecars,
      certificates: this.#metrics,
      authority: () => this.#ca,
      workloadTtlSeconds: () => Math.round(this.#config.mesh.certificates.workloadTtlMs / 1000),
      operator: {
        apply: (text, file) => this.apply(text, file),
        configText: () => this.#config.source,
        issueToken: async (service, namespace, ttl) => {
          const ns = workloadNamespace(namespace);
          const t = await this.#tokens.issue(serviceIdentity(this.#config, service, ns), ttl);
          return { ...t, warning: unknownServiceWarning(this.#config, service, ns) };
        },
        revoke: (what) => this.#revoke(what),
        status: () => this.status(),
      },
    });
    const server = controlPlaneServer(own, handler, limits);
    server.on('session', (s) => {
      this.#sessions.add(s);
      s.on('close', () => this.#sessions.delete(s));
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') return;
      this.#http1.add(socket);
      socket.on('close', () => this.#http1.delete(socket));
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    for (const r of unjournaled) this.#store.journal.append(r);
    writeFileAtomic(this.state.path('config.yaml'), this.#config.source, 0o600);
    const addr = server.address() as AddressInfo;
    this.#url = `https://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    const info: ControlPlaneInfo = { url: this.#url, identity: this.identity, pid: process.pid, ...(this.metricsUrl ? { metricsUrl: this.metricsUrl } : {}) };
    writeFileAtomic(this.state.path('control-plane.json'), JSON.stringify(info, null, 2) + '\n', 0o644);
    this.#ownSvid.schedule(own.notAfter);
    this.#log({ msg: 'control plane listening', url: this.#url, identity: this.identity, trustDomain: this.#config.mesh.trustDomain, ...(this.metricsUrl ? { metrics: this.metricsUrl } : {}) });
  }

  #startTimers(heartbeatTimeoutMs: number): void {
    const t = setInterval(() => this.#sidecars.sweep(heartbeatTimeoutMs), Math.max(250, heartbeatTimeoutMs / 3));
    t.unref();
    this.#timers.push(t);
  }

  #revoke(what: { serial?: string; identity?: string }) {
    const journal = this.#store.journal.read();
    const revoked = what.serial ? this.#revocations.revokeSerial(what.serial, this.#clock(), journal) : this.#revocations.revokeIdentity(what.identity!, this.#clock(), journal);
    this.#pusher.pushNow();
    this.#sidecars.disconnectRevoked((serial) => this.#revocations.has(serial));
    return revoked;
  }

  /** Watches the config file (editors replace it, so the folder is watched) and the CA state (rotation). */
  #watch(): void {
    const onChange = (file: string, action: () => void) => this.#watchers.push(watchFile(file, action));
    if (this.#configPath) {
      this.#watchers.push(watchConfigFile(this.#configPath, { live: () => this.#config.source, apply: (text, file) => this.apply(text, file), log: this.#log, tell: this.#onConfigFile }));
    }
    onChange(this.state.path('ca') + '/ca.json', () => {
      try {
        this.#store = CaStore.open(this.state.path('ca'));
        this.#ca = this.#store.authority({ clock: this.#clock });
        this.#pusher.pushNow();
        void this.#ownSvid.renew();
        this.#log({ msg: 'CA state changed; reloaded', roots: this.#store.bundle.roots.length });
      } catch (err) {
        this.#log({ msg: 'CA state changed but cannot be loaded; keeping the previous CA', error: (err as Error).message });
      }
    });
  }
}
