// Compiles a TrafficPolicy document: load balancing, connection limits, circuit breaking and outlier ejection.

import { durationWithin, formatDuration } from './duration.ts';
import type { FieldPath } from './issues.ts';
import { parseServiceRef } from './names.ts';
import type { Reporter } from './reporter.ts';
import type { TrafficPolicyDocument } from './schema.ts';
import type { TrafficPolicyConfig, TrafficPolicySpec } from './types.ts';

/** What a service with no TrafficPolicy gets, and what a TrafficPolicy's omitted fields default to. */
export const DEFAULT_TRAFFIC_POLICY: TrafficPolicySpec = {
  loadBalancer: { type: 'p2c-ewma' },
  connectionPool: { maxConnections: 1024, maxPendingRequests: 1024 },
  circuitBreaker: null,
  outlierDetection: null,
};

function ms(text: string, at: FieldPath, report: Reporter): number {
  const d = durationWithin(text);
  if (d.ok) return d.ms;
  report.error(at, d.reason);
  return 0;
}

export function compileTrafficPolicy(doc: TrafficPolicyDocument, report: Reporter): TrafficPolicyConfig {
  const { spec } = doc;
  const namespace = doc.metadata.namespace ?? 'default';
  const defaults = DEFAULT_TRAFFIC_POLICY;

  let circuitBreaker: TrafficPolicySpec['circuitBreaker'] = null;
  if (spec.circuitBreaker) {
    const cb = spec.circuitBreaker;
    const at = ['spec', 'circuitBreaker'];
    const resetTimeoutMs = ms(cb.resetTimeout ?? '10s', [...at, 'resetTimeout'], report);
    const maxResetTimeoutMs = ms(cb.maxResetTimeout ?? '2m', [...at, 'maxResetTimeout'], report);
    if (resetTimeoutMs > 0 && maxResetTimeoutMs > 0 && maxResetTimeoutMs < resetTimeoutMs) {
      report.error([...at, cb.maxResetTimeout === undefined ? 'resetTimeout' : 'maxResetTimeout'], `maxResetTimeout ${formatDuration(maxResetTimeoutMs)} is shorter than resetTimeout ${formatDuration(resetTimeoutMs)}; it must be at least as long`);
    }
    circuitBreaker = {
      errorThresholdPercentage: cb.errorThresholdPercentage ?? 50,
      volumeThreshold: cb.volumeThreshold ?? 20,
      consecutiveFailures: cb.consecutiveFailures ?? 5,
      resetTimeoutMs,
      maxResetTimeoutMs,
    };
  }

  let outlierDetection: TrafficPolicySpec['outlierDetection'] = null;
  if (spec.outlierDetection) {
    const od = spec.outlierDetection;
    const at = ['spec', 'outlierDetection'];
    outlierDetection = {
      consecutive5xx: od.consecutive5xx ?? 5,
      intervalMs: ms(od.interval ?? '10s', [...at, 'interval'], report),
      baseEjectionTimeMs: ms(od.baseEjectionTime ?? '30s', [...at, 'baseEjectionTime'], report),
      maxEjectionPercent: od.maxEjectionPercent ?? 10,
    };
  }

  return {
    name: doc.metadata.name,
    namespace,
    service: parseServiceRef(spec.service, namespace),
    loadBalancer: { type: spec.loadBalancer?.type ?? defaults.loadBalancer.type },
    connectionPool: {
      maxConnections: spec.connectionPool?.maxConnections ?? defaults.connectionPool.maxConnections,
      maxPendingRequests: spec.connectionPool?.maxPendingRequests ?? defaults.connectionPool.maxPendingRequests,
    },
    circuitBreaker,
    outlierDetection,
  };
}
