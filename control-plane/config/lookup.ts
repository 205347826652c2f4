// Finding things in a compiled MeshConfig by service: the Service itself, its Route, its policies.

import { DEFAULT_TRAFFIC_POLICY } from './compile-traffic-policy.ts';
import type { AuthorizationPolicyConfig, MeshConfig, RouteConfig, ServiceConfig, ServiceRef, TrafficPolicySpec } from './types.ts';

/** "name.namespace": how a service is named across namespaces (and the host an app may call it by). */
export function serviceKey(name: string, namespace: string): string {
  return `${name}.${namespace}`;
}

const is = (ref: ServiceRef, name: string, namespace: string) => ref.name === name && ref.namespace === namespace;

export function findService(config: MeshConfig, name: string, namespace = 'default'): ServiceConfig | undefined {
  return config.services.find((s) => is(s, name, namespace));
}

/** A service has at most one Route; null means all its traffic goes to any endpoint. */
export function routeFor(config: MeshConfig, service: ServiceRef): RouteConfig | null {
  return config.routes.find((r) => is(r.service, service.name, service.namespace)) ?? null;
}

/** The service's TrafficPolicy, or the defaults when it has none. */
export function trafficPolicyFor(config: MeshConfig, service: ServiceRef): TrafficPolicySpec {
  const p = config.trafficPolicies.find((t) => is(t.service, service.name, service.namespace));
  return p ? { loadBalancer: p.loadBalancer, connectionPool: p.connectionPool, circuitBreaker: p.circuitBreaker, outlierDetection: p.outlierDetection } : DEFAULT_TRAFFIC_POLICY;
}

export function authorizationPoliciesFor(config: MeshConfig, service: ServiceRef): readonly AuthorizationPolicyConfig[] {
  return config.authorizationPolicies.filter((p) => is(p.service, service.name, service.namespace));
}
