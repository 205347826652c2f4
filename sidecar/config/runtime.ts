// The sidecar's compiled view of a snapshot: lookups by host and service, ready for the request path.
//
// Compiling is where a snapshot is refused: anything this sidecar does not understand is an error, the agent
// NACKs it, and the last good config stays in force (fail closed, never half-apply).

import { X509Certificate } from 'node:crypto';
import { DEFAULT_STREAM_IDLE_TIMEOUT_MS } from '../../control-plane/config/compile-mesh.ts';
import { MAX_DURATION_MS } from '../../control-plane/config/duration.ts';
import type { MtlsMode, ServiceConfig } from '../../control-plane/config/types.ts';
import type { Endpoint } from '../../control-plane/registry.ts';
import type { SnapshotBody, Upstream } from '../../control-plane/snapshot/types.ts';
import { compileAuthorizer, type Authorizer } from '../policy/authorizer.ts';
import { normalizeHost } from '../policy/normalize.ts';
import { inSubset, RoundRobin } from '../routing/balancer.ts';
import { compileRoute, type RouteTable } from '../routing/route-table.ts';
import { checkSnapshotShape } from './snapshot-shape.ts';

const PROTOCOLS = new Set(['http', 'http2', 'grpc', 'tcp']);
const MTLS_MODES = new Set(['STRICT', 'PERMISSIVE']);

export interface UpstreamRuntime {
  /** "name.namespace" */
  readonly key: string;
  readonly service: ServiceConfig;
  /** SPIFFE IDs a peer of this service may present */
  readonly expectedIdentities: ReadonlySet<string>;
  /** the first of them: the destination identity telemetry reports */
  readonly identity: string;
  readonly endpoints: readonly Endpoint[];
  readonly route: Upstream['route'];
  readonly routeTable: RouteTable | null;
  readonly trafficPolicy: Upstream['trafficPolicy'];
  /** endpoints per subset name ('' for the whole service), each with its balancer */
  readonly subsets: ReadonlyMap<string, { readonly endpoints: readonly Endpoint[]; readonly balancer: RoundRobin }>;
}

export interface RuntimeConfig {
  readonly version: number;
  readonly body: SnapshotBody;
  readonly self: SnapshotBody['service'];
  /** "name.namespace" of this workload's service, as metrics and spans name it */
  readonly selfKey: string;
  readonly mtlsMode: MtlsMode;
  /** by every name an app may use: "catalog" (same namespace), "catalog.default" */
  readonly hosts: ReadonlyMap<string, UpstreamRuntime>;
  readonly upstreams: ReadonlyMap<string, UpstreamRuntime>;
  readonly trustBundle: string;
  readonly revokedSerials: ReadonlySet<string>;
  /** this service's authorization policies and the mesh default, compiled */
  readonly authorizer: Authorizer;
  /** the service port policies' `ports` match against (0 if the service is not in the config) */
  readonly servicePort: number;
  /** this service is `protocol: tcp`: its inbound takes opaque TCP (ALPN weft-tcp) only, and never HTTP */
  readonly tcpService: boolean;
  /** the Mesh's streamIdleTimeout: an HTTP request or stream with no byte moving either way this long is ended; 0: never */
  readonly streamIdleTimeoutMs: number;
}

/** `ignored`: where the snapshot holds fields this sidecar does not know (checkSnapshotShape), for the log. */
export function compileSnapshot(version: number, body: SnapshotBody, ignored: string[] = []): RuntimeConfig {
  ignored.push(...checkSnapshotShape(body));
  if (!MTLS_MODES.has(body.mesh.mtls.mode)) throw new Error(`unknown mTLS mode ${JSON.stringify(body.mesh.mtls.mode)}`);
  // A control plane from before the field sends none: the Mesh's default.
  const streamIdleTimeoutMs = body.mesh.streamIdleTimeoutMs ?? DEFAULT_STREAM_IDLE_TIMEOUT_MS;
  if (!Number.isSafeInteger(streamIdleTimeoutMs) || streamIdleTimeoutMs < 0 || streamIdleTimeoutMs > MAX_DURATION_MS) throw new Error(`stream idle timeout ${JSON.stringify(streamIdleTimeoutMs)} is not a whole number of ms in 0..${MAX_DURATION_MS}`);
  if (!/-----BEGIN CERTIFICATE-----/.test(body.trustBundle)) throw new Error('the trust bundle holds no certificate');
  // Parse each root now: a bundle node:tls would choke on later is refused here.
  for (const pem of body.trustBundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []) new X509Certificate(pem);
  const hosts = new Map<string, UpstreamRuntime>();
  const upstreams = new Map<string, UpstreamRuntime>();
  for (const u of body.upstreams) {
    if (!PROTOCOLS.has(u.service.protocol)) throw new Error(`service ${u.service.name}.${u.service.namespace}: unknown protocol ${JSON.stringify(u.service.protocol)}`);
    if (u.expectedIdentities.length === 0) throw new Error(`service ${u.service.name}.${u.service.namespace}: no expected identity`);
    for (const e of u.endpoints) {
      if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(e.address)) throw new Error(`service ${u.service.name}: endpoint address ${JSON.stringify(e.address)} is not host:port`);
    }
    if (u.route) checkRoute(u);
    const subsets = new Map([['', { endpoints: u.endpoints, balancer: new RoundRobin() }]]);
    for (const subset of u.service.subsets) subsets.set(subset.name, { endpoints: u.endpoints.filter((e) => inSubset(e, subset)), balancer: new RoundRobin() });
    const rt: UpstreamRuntime = {
      key: `${u.service.name}.${u.service.namespace}`,
      service: u.service,
      expectedIdentities: new Set(u.expectedIdentities),
      identity: u.expectedIdentities[0]!,
      endpoints: u.endpoints,
      route: u.route,
      routeTable: u.route ? compileRoute(u.route) : null,
      trafficPolicy: u.trafficPolicy,
      subsets,
    };
    upstreams.set(rt.key, rt);
    for (const h of u.hosts) hosts.set(h.toLowerCase(), rt);
  }
  return {
    version,
    body,
    self: body.service,
    selfKey: `${body.service.name}.${body.service.namespace}`,
    mtlsMode: body.mesh.mtls.mode,
    hosts,
    upstreams,
    trustBundle: body.trustBundle,
    revokedSerials: new Set(body.revokedSerials),
    authorizer: compileAuthorizer(body.inbound.authorizationPolicies, body.mesh.defaultPolicy),
    servicePort: body.inbound.service?.port ?? 0,
    tcpService: body.inbound.service?.protocol === 'tcp',
    streamIdleTimeoutMs,
  };
}

/** What the shape cannot say about a route: every destination and mirror names a subset the service has, weights add up. */
function checkRoute(u: Upstream): void {
  const where = `route for ${u.service.name}.${u.service.namespace}`;
  const subsets = new Set(u.service.subsets.map((s) => s.name));
  const known = (subset: string, rule: number) => {
    if (!subsets.has(subset)) throw new Error(`${where}, rule ${rule}: subset ${JSON.stringify(subset)} is not one of the service's subsets`);
  };
  u.route!.rules.forEach((rule, i) => {
    if (rule.destinations.length === 0) throw new Error(`${where}, rule ${i}: no destination`);
    for (const d of rule.destinations) {
      if (d.weight < 0 || d.weight > 100) throw new Error(`${where}, rule ${i}: weight ${d.weight} is not in 0..100`);
      if (d.subset !== null) known(d.subset, i);
    }
    if (rule.destinations.every((d) => d.weight === 0)) throw new Error(`${where}, rule ${i}: every weight is 0`);
    if (rule.mirror) known(rule.mirror.subset, i);
    for (const m of rule.match) {
      for (const h of m.headers) if (h.type !== 'present' && typeof (h as { value?: unknown }).value !== 'string') throw new Error(`${where}, rule ${i}: header match on ${h.name} has no value`);
    }
  });
}

/** Finds the upstream for a Host header or absolute-URI authority: case, trailing dot and port do not matter. */
export function upstreamForHost(config: RuntimeConfig, host: string | undefined): UpstreamRuntime | undefined {
  if (!host) return undefined;
  const h = normalizeHost(host);
  return config.hosts.get(h) ?? config.hosts.get(h.replace(/\.svc(\.cluster\.local)?$/, ''));
}
