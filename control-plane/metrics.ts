// The control plane's Prometheus metrics, what istiod's pilot_* and citadel_* are to Istio: sidecars connected,
// config versions and applies, snapshots pushed, ACKed and NACKed, push convergence, certificates issued and
// refused, stream lines refused, and the process.
//
// Events (a snapshot sent, an ACK, a certificate) are one add to a child fetched once, with no allocation: the
// push path runs for every sidecar on every change (bench/push.ts). State (sidecars, versions, memory) is read at
// scrape time. Label values are enums, or a service and namespace a sidecar registered as (a DNS label each,
// the identity of its certificate checked against it): never a token, key, sidecar ID or SPIFFE ID.

import { readdirSync, readFileSync } from 'node:fs';
import { isWeftError, type ErrorCode } from '../errors.ts';
import { Counter, Gauge, Histogram, Registry, type CounterChild, type HistogramChild } from '../prometheus.ts';
import type { CertificateKind } from './api/identity.ts';
import { ackState, type SidecarEntry } from './registry.ts';

/** Why a certificate request was refused: the label `reason` of weft_control_plane_certificate_requests_refused_total. */
export type RefusalReason =
  | 'rate_limited'
  | 'token_invalid'
  | 'token_expired'
  | 'token_replayed'
  | 'identity_mismatch'
  | 'revoked'
  | 'certificate_expired'
  | 'unauthenticated'
  | 'bad_request'
  | 'ca_unavailable'
  | 'internal';

const REFUSAL_BY_CODE: Partial<Record<ErrorCode, RefusalReason>> = {
  WEFT_API_RATE_LIMITED: 'rate_limited',
  WEFT_TOKEN_INVALID: 'token_invalid',
  WEFT_TOKEN_EXPIRED: 'token_expired',
  WEFT_TOKEN_REPLAYED: 'token_replayed',
  // a CSR naming another identity, a certificate of another trust domain, an operator's certificate renewing
  WEFT_CA_CSR_NAME_MISMATCH: 'identity_mismatch',
  WEFT_CA_WRONG_TRUST_DOMAIN: 'identity_mismatch',
  WEFT_AUTH_FORBIDDEN: 'identity_mismatch',
  WEFT_CERT_REVOKED: 'revoked',
  WEFT_CERT_EXPIRED: 'certificate_expired',
  // no client certificate, or one that does not chain to the trust bundle
  WEFT_AUTH_REQUIRED: 'unauthenticated',
  WEFT_API_BAD_REQUEST: 'bad_request',
  WEFT_API_TOO_LARGE: 'bad_request',
  WEFT_API_TIMEOUT: 'bad_request',
  WEFT_SPIFFE_INVALID: 'bad_request',
  WEFT_CA_PEM_MALFORMED: 'bad_request',
  WEFT_CA_CSR_MALFORMED: 'bad_request',
  WEFT_CA_CSR_SIGNATURE: 'bad_request',
  WEFT_CA_CSR_KEY_UNSUPPORTED: 'bad_request',
  WEFT_CA_TTL_OUT_OF_BOUNDS: 'bad_request',
  WEFT_CA_ISSUER_NOT_YET_VALID: 'ca_unavailable',
  WEFT_CA_ISSUER_EXPIRED: 'ca_unavailable',
  WEFT_CA_ISSUER_EXPIRES_TOO_SOON: 'ca_unavailable',
};

/** The reason label for an error a certificate request ended with. */
export function refusalReason(err: unknown): RefusalReason {
  return (isWeftError(err) && REFUSAL_BY_CODE[err.code]) || 'internal';
}

/** The reasons each kind of request can meet, whose series exist from the start (at 0) so rate() and alerts see them. */
const REFUSALS: Readonly<Record<CertificateKind, readonly RefusalReason[]>> = {
  bootstrap: ['rate_limited', 'token_invalid', 'token_expired', 'token_replayed', 'identity_mismatch', 'bad_request', 'ca_unavailable', 'internal'],
  renewal: ['rate_limited', 'identity_mismatch', 'revoked', 'certificate_expired', 'unauthenticated', 'bad_request', 'ca_unavailable', 'internal'],
};

/** Why a line up a full-duplex stream was refused (./api/stream-lines.ts): the label `reason`. */
export type LineRefusal = 'rate_limited' | 'too_large' | 'malformed' | 'wrong_sidecar' | 'other';

const LINE_REFUSAL_BY_CODE: Partial<Record<ErrorCode, LineRefusal>> = {
  WEFT_API_RATE_LIMITED: 'rate_limited',
  WEFT_API_TOO_LARGE: 'too_large',
  WEFT_API_BAD_REQUEST: 'malformed',
  WEFT_AUTH_FORBIDDEN: 'wrong_sidecar',
};

/** From a config change to a sidecar's ACK of it: one push to 1,000 sidecars takes ~0.2 s (README, bench:push). */
const CONVERGENCE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/**
 * When each of the last versions was made, for the convergence time of late ACKs: a version is kept until 1,024
 * newer ones have been made (at least 100 s at the debounce's fastest, one version per 100 ms).
 */
const VERSIONS_KEPT = 1024;

/** What the control plane is now, read at scrape time. */
export interface ControlPlaneState {
  sidecars(): readonly SidecarEntry[];
  /** the Services of the live config: each has a sidecars series, at 0 when none is connected */
  services(): readonly { readonly name: string; readonly namespace: string }[];
  /** the latest snapshot version (config applies, endpoint changes, revocations, CA changes) */
  snapshotVersion(): number;
  /** the version the last config applied was pushed as */
  configVersion(): number;
}

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly #now: () => number;
  readonly #applies: { readonly applied: CounterChild; readonly rejected: CounterChild };
  readonly #sent: { readonly full: CounterChild; readonly delta: CounterChild };
  readonly #acks: { readonly ack: CounterChild; readonly nack: CounterChild };
  readonly #convergence: HistogramChild;
  readonly #issued: Readonly<Record<CertificateKind, CounterChild>>;
  readonly #refused: Counter<'kind' | 'reason'>;
  readonly #lines: Counter<'reason'>;
  /** ring buffers, by version % VERSIONS_KEPT: the version held there and when its change happened (`now`) */
  readonly #madeVersion = new Float64Array(VERSIONS_KEPT).fill(-1);
  readonly #madeAt = new Float64Array(VERSIONS_KEPT);

  /** `now`: a monotonic clock in ms, for convergence times (default performance.now) */
  constructor(state: ControlPlaneState, now: () => number = () => performance.now()) {
    this.#now = now;
    const registry = this.registry;
    const p = 'weft_control_plane_';
    new Gauge({
      name: `${p}sidecars_connected`,
      help: 'Sidecars with an open snapshot stream, by the namespace and service they registered as (0 for a Service of the config with none).',
      labelNames: ['namespace', 'service'],
      registry,
      collect: (g) => {
        g.clear();
        for (const s of state.services()) g.set({ namespace: s.namespace, service: s.name }, 0);
        for (const e of state.sidecars()) g.labels({ namespace: e.namespace, service: e.service }).inc();
      },
    });
    new Gauge({
      name: `${p}sidecars_by_state`,
      help: 'Connected sidecars by what they hold, as weft status shows: synced (ACKed the last snapshot sent), stale (an ACK outstanding), nack (refused the last snapshot).',
      labelNames: ['state'],
      registry,
      collect: (g) => {
        const counts = { synced: 0, stale: 0, nack: 0 };
        for (const e of state.sidecars()) counts[ackState(e).toLowerCase() as keyof typeof counts]++;
        for (const [s, n] of Object.entries(counts)) g.set({ state: s }, n);
      },
    });
    new Gauge({ name: `${p}config_version`, help: 'The version the last config applied was pushed as.', registry, collect: (g) => g.set(undefined, state.configVersion()) });
    new Gauge({
      name: `${p}snapshot_version`,
      help: 'The latest snapshot version (a config applied, endpoints changed, a revocation, a CA change); a sidecar in sync reports it as weft_config_version.',
      registry,
      collect: (g) => g.set(undefined, state.snapshotVersion()),
    });
    const applies = new Counter({ name: `${p}config_applies_total`, help: 'Configs applied (weft apply, or the watched file changed) by result: applied, or rejected whole.', labelNames: ['result'], registry });
    this.#applies = { applied: applies.labels({ result: 'applied' }), rejected: applies.labels({ result: 'rejected' }) };
    const sent = new Counter({ name: `${p}snapshots_sent_total`, help: 'Snapshots written to sidecar streams: full (the first on a stream) or delta (only what changed).', labelNames: ['type'], registry });
    this.#sent = { full: sent.labels({ type: 'full' }), delta: sent.labels({ type: 'delta' }) };
    const acks = new Counter({ name: `${p}snapshot_acks_total`, help: 'Snapshot reports received from sidecars, by result: ack (applied) or nack (refused).', labelNames: ['result'], registry });
    this.#acks = { ack: acks.labels({ result: 'ack' }), nack: acks.labels({ result: 'nack' }) };
    this.#convergence = new Histogram({
      name: `${p}push_convergence_seconds`,
      help: 'Time from a change (a config applied, endpoints changed, a revocation) to each connected sidecar ACKing the version that carries it.',
      buckets: CONVERGENCE_BUCKETS,
      registry,
    }).labels({});
    const issued = new Counter({ name: `${p}certificates_issued_total`, help: 'Workload certificates signed, by kind: bootstrap (for a token) or renewal (over mTLS).', labelNames: ['kind'], registry });
    this.#issued = { bootstrap: issued.labels({ kind: 'bootstrap' }), renewal: issued.labels({ kind: 'renewal' }) };
    this.#refused = new Counter({
      name: `${p}certificate_requests_refused_total`,
      help: 'Certificate requests refused, by kind (bootstrap, renewal) and reason (rate_limited is a 429 with Retry-After).',
      labelNames: ['kind', 'reason'],
      registry,
    });
    for (const [kind, reasons] of Object.entries(REFUSALS)) for (const reason of reasons) this.#refused.inc({ kind, reason }, 0);
    this.#lines = new Counter({ name: `${p}stream_lines_rejected_total`, help: 'Lines up a full-duplex sidecar stream refused (the stream is then closed), by reason.', labelNames: ['reason'], registry });
    for (const reason of ['rate_limited', 'too_large', 'malformed', 'wrong_sidecar', 'other']) this.#lines.inc({ reason }, 0);
    processMetrics(registry);
  }

  /** The exposition, for GET /metrics. */
  text(): string {
    return this.registry.metrics();
  }

  configApplied(ok: boolean): void {
    (ok ? this.#applies.applied : this.#applies.rejected).inc();
  }

  /** A new snapshot version, carrying a change that happened at `changedAt` (this object's clock). */
  versionMade(version: number, changedAt: number): void {
    const i = version % VERSIONS_KEPT;
    this.#madeVersion[i] = version;
    this.#madeAt[i] = changedAt;
  }

  /** The clock versionMade's `changedAt` is read from. */
  now(): number {
    return this.#now();
  }

  snapshotSent(full: boolean): void {
    (full ? this.#sent.full : this.#sent.delta).inc();
  }

  /**
   * A sidecar's ACK (ok) or NACK of `version`. `converged`: this is its first word on a version pushed to it
   * while it was connected (not the snapshot its stream began with), so the time since the change counts.
   */
  ack(version: number, ok: boolean, converged: boolean): void {
    (ok ? this.#acks.ack : this.#acks.nack).inc();
    if (!ok || !converged) return;
    const i = version % VERSIONS_KEPT;
    if (this.#madeVersion[i] === version) this.#convergence.observe(Math.max(0, this.#now() - this.#madeAt[i]!) / 1000);
  }

  certificateIssued(kind: CertificateKind): void {
    this.#issued[kind].inc();
  }

  certificateRefused(kind: CertificateKind, err: unknown): void {
    this.#refused.inc({ kind, reason: refusalReason(err) });
  }

  streamLineRejected(code: ErrorCode | undefined): void {
    this.#lines.inc({ reason: (code && LINE_REFUSAL_BY_CODE[code]) || 'other' });
  }
}

/** The process families Prometheus' client libraries export under these names, read at scrape time. */
function processMetrics(registry: Registry): void {
  new Gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes.', registry, collect: (g) => g.set(undefined, process.memoryUsage.rss()) });
  new Counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    registry,
    collect: (c) => {
      const { user, system } = process.cpuUsage();
      c.labels({}).value = (user + system) / 1e6;
    },
  });
  new Gauge({ name: 'process_start_time_seconds', help: 'Start time of the process since the Unix epoch in seconds.', registry }).set(undefined, Math.round(Date.now() / 1000 - process.uptime()));
  // Linux only (/proc): descriptors are what a flood of connections exhausts (./api/server.ts caps them per client).
  if (fdCount() !== null) {
    new Gauge({ name: 'process_open_fds', help: 'Number of open file descriptors.', registry, collect: (g) => g.set(undefined, fdCount() ?? 0) });
    const max = maxFds();
    if (max !== null) new Gauge({ name: 'process_max_fds', help: 'Maximum number of open file descriptors.', registry }).set(undefined, max);
  }
  const heap = (read: (m: NodeJS.MemoryUsage) => number) => (g: Gauge) => g.set(undefined, read(process.memoryUsage()));
  new Gauge({ name: 'nodejs_heap_size_total_bytes', help: 'Process heap size from Node.js in bytes.', registry, collect: heap((m) => m.heapTotal) });
  new Gauge({ name: 'nodejs_heap_size_used_bytes', help: 'Process heap size used from Node.js in bytes.', registry, collect: heap((m) => m.heapUsed) });
  new Gauge({ name: 'nodejs_external_memory_bytes', help: 'Node.js external memory size in bytes.', registry, collect: heap((m) => m.external) });
}

function fdCount(): number | null {
  try {
    // One of the entries is the descriptor readdir itself holds open.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}

function maxFds(): number | null {
  const m = /^Max open files\s+(\d+)/m.exec(readSafe('/proc/self/limits'));
  return m ? Number(m[1]) : null;
}

function readSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
