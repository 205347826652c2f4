// Compiles the Mesh document: trust domain, mTLS mode, certificate lifetime, default policy, access log, stream idle
// timeout and tracing.

import { DEFAULT_WORKLOAD_TTL_S, MAX_WORKLOAD_TTL_S, MIN_WORKLOAD_TTL_S } from '../../ca/lifetime.ts';
import { trustDomainProblem } from '../../ca/spiffe-id.ts';
import { durationWithin, formatDuration } from './duration.ts';
import type { Reporter } from './reporter.ts';
import type { MeshDocument } from './schema.ts';
import type { MeshConfig } from './types.ts';

/** The workload certificate lifetimes the CA accepts, in milliseconds. */
export const WORKLOAD_TTL_BOUNDS = { min: MIN_WORKLOAD_TTL_S * 1000, max: MAX_WORKLOAD_TTL_S * 1000 } as const;
const DEFAULT_WORKLOAD_TTL = formatDuration(DEFAULT_WORKLOAD_TTL_S * 1000);
/** Envoy's default stream_idle_timeout. */
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 300_000;
const DEFAULT_STREAM_IDLE_TIMEOUT = formatDuration(DEFAULT_STREAM_IDLE_TIMEOUT_MS);

export function compileMesh(doc: MeshDocument, report: Reporter): MeshConfig['mesh'] {
  const { spec } = doc;
  const tdProblem = trustDomainProblem(spec.trustDomain);
  if (tdProblem) report.error(['spec', 'trustDomain'], `${JSON.stringify(spec.trustDomain)} is not a trust domain: ${tdProblem}; write it like shop.example`);

  const ttlText = spec.certificates?.workloadTtl ?? DEFAULT_WORKLOAD_TTL;
  const ttl = durationWithin(ttlText, WORKLOAD_TTL_BOUNDS);
  if (!ttl.ok) report.error(['spec', 'certificates', 'workloadTtl'], ttl.reason);

  // 0s turns it off (as Envoy's); a zero duration is meant here, unlike a route's timeout.
  const idle = durationWithin(spec.streamIdleTimeout ?? DEFAULT_STREAM_IDLE_TIMEOUT, { min: 0 });
  if (!idle.ok) report.error(['spec', 'streamIdleTimeout'], idle.reason);

  let tracing: MeshConfig['mesh']['tracing'] = null;
  if (spec.tracing) {
    const { endpoint } = spec.tracing;
    let url: URL | null = null;
    try {
      url = new URL(endpoint);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      report.error(['spec', 'tracing', 'endpoint'], `${JSON.stringify(endpoint)} is not an http(s) URL; give the collector's OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces`);
    }
    tracing = { endpoint, sampling: spec.tracing.sampling ?? 1 };
  }

  return {
    name: doc.metadata.name,
    trustDomain: spec.trustDomain,
    mtls: { mode: spec.mtls?.mode ?? 'STRICT' },
    certificates: { workloadTtlMs: ttl.ok ? ttl.ms : 0 },
    defaultPolicy: spec.defaultPolicy ?? 'allow-authenticated',
    accessLog: spec.accessLog ?? false,
    streamIdleTimeoutMs: idle.ok ? idle.ms : 0,
    tracing,
  };
}
