// Builds one service's snapshot from the config, the registry's endpoints, the trust bundle and revocations.

import { workloadId } from '../../ca/spiffe-id.ts';
import type { MeshConfig, ServiceConfig } from '../config/types.ts';
import type { Endpoint } from '../registry.ts';
import type { SnapshotBody, Upstream } from './types.ts';

export interface SnapshotInputs {
  readonly config: MeshConfig;
  /** the upstream list for callers in a namespace; pass a memo so one push builds each list once */
  readonly upstreams?: (namespace: string) => readonly Upstream[];
  readonly endpoints: (service: string, namespace: string) => readonly Endpoint[];
  readonly trustBundle: string;
  readonly revokedSerials: readonly string[];
}

const same = (a: { name: string; namespace: string }, b: { name: string; namespace: string }) => a.name === b.name && a.namespace === b.namespace;

/** The identity a sidecar of this service runs as: from the Service's serviceAccount, or its name if unknown. */
export function serviceIdentity(config: MeshConfig, name: string, namespace: string): string {
  return config.services.find((s) => same(s, { name, namespace }))?.identity ?? workloadId(config.mesh.trustDomain, namespace, name).uri;
}

/** One upstream per Service: its endpoints, expected identity, route and traffic policy. */
export function buildUpstream(inputs: SnapshotInputs, service: ServiceConfig, callerNamespace: string): Upstream {
  const { config } = inputs;
  const route = config.routes.find((r) => same(r.service, service)) ?? null;
  const tp = config.trafficPolicies.find((p) => same(p.service, service));
  return {
    service,
    hosts: service.namespace === callerNamespace ? [service.name, `${service.name}.${service.namespace}`] : [`${service.name}.${service.namespace}`],
    expectedIdentities: [service.identity],
    endpoints: inputs.endpoints(service.name, service.namespace),
    route,
    trafficPolicy: tp ? { loadBalancer: tp.loadBalancer, connectionPool: tp.connectionPool, circuitBreaker: tp.circuitBreaker, outlierDetection: tp.outlierDetection } : null,
  };
}

export function buildUpstreams(inputs: SnapshotInputs, callerNamespace: string): Upstream[] {
  return inputs.config.services.map((s) => buildUpstream(inputs, s, callerNamespace));
}

/** The snapshot every sidecar of service `name.namespace` receives. */
export function buildSnapshot(inputs: SnapshotInputs, name: string, namespace: string): SnapshotBody {
  const { config } = inputs;
  const self = { name, namespace };
  const { name: _n, ...mesh } = config.mesh;
  return {
    service: { name, namespace, identity: serviceIdentity(config, name, namespace) },
    mesh,
    inbound: {
      service: config.services.find((s) => same(s, self)) ?? null,
      authorizationPolicies: config.authorizationPolicies.filter((p) => same(p.service, self)),
    },
    upstreams: inputs.upstreams?.(namespace) ?? buildUpstreams(inputs, namespace),
    trustBundle: inputs.trustBundle,
    revokedSerials: inputs.revokedSerials,
  };
}
