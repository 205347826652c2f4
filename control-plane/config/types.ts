// The compiled mesh config: every default applied, durations in milliseconds, references resolved, deeply frozen.
//
// This is what the control plane builds snapshots from. It is plain data (JSON-serialisable, no RegExp or Map),
// so it can be pushed to sidecars as is; regexes stay as their source and are compiled with anchoredRegExp().

export type MtlsMode = 'STRICT' | 'PERMISSIVE';
export type DefaultPolicy = 'allow-authenticated' | 'deny';
export type Protocol = 'http' | 'http2' | 'grpc' | 'tcp';
export type PolicyAction = 'ALLOW' | 'DENY' | 'AUDIT';
export type LoadBalancerType = 'p2c-ewma' | 'round-robin';

export interface MeshSpec {
  readonly trustDomain: string;
  readonly mtls: { readonly mode: MtlsMode };
  readonly certificates: { readonly workloadTtlMs: number };
  /** what a service with no AuthorizationPolicy allows: any mesh identity, or nothing */
  readonly defaultPolicy: DefaultPolicy;
  /** whether sidecars write an access-log line per request and TCP connection */
  readonly accessLog: boolean;
  /**
   * A request or stream with no byte moving in either direction for this long is ended by the sidecars (Envoy's
   * stream_idle_timeout); 0: never
   */
  readonly streamIdleTimeoutMs: number;
  /** null: tracing is off */
  readonly tracing: { readonly endpoint: string; readonly sampling: number } | null;
}

/** A Service named from another document, resolved: "catalog" in namespace default, or "catalog.shop". */
export interface ServiceRef {
  readonly name: string;
  readonly namespace: string;
}

export interface Subset {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ServiceConfig {
  readonly name: string;
  readonly namespace: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly serviceAccount: string;
  /** spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount> */
  readonly identity: string;
  readonly subsets: readonly Subset[];
}

/** A regex `value` must match the whole string (see anchoredRegExp). */
export type PathMatch = { readonly type: 'exact' | 'prefix' | 'regex'; readonly value: string };

/** Header names are lowercase. */
export type HeaderMatch =
  | { readonly name: string; readonly type: 'exact' | 'prefix' | 'regex'; readonly value: string }
  | { readonly name: string; readonly type: 'present' };

/** All of its parts must hold; an empty `methods` or `headers` constrains nothing. */
export interface RequestMatch {
  readonly path: PathMatch | null;
  readonly methods: readonly string[];
  readonly headers: readonly HeaderMatch[];
}

export interface WeightedDestination {
  /** null: any endpoint of the service */
  readonly subset: string | null;
  /** 0..100; a rule's weights sum to 100 */
  readonly weight: number;
}

export interface Stickiness {
  readonly type: 'header' | 'cookie';
  /** a header name (lowercase) or a cookie name */
  readonly name: string;
}

export interface RetryPolicy {
  /** retries after the first try */
  readonly attempts: number;
  /** null: each try may use what is left of the rule's timeout */
  readonly perTryTimeoutMs: number | null;
  /** statuses: HTTP statuses; grpcStatuses: gRPC status codes (a gRPC service's trailers-only answers) */
  readonly on: { readonly connectFailure: boolean; readonly reset: boolean; readonly statuses: readonly number[]; readonly grpcStatuses: readonly number[] };
  /** retries may add at most `percent` % to the requests, but `minPerSecond` are always allowed */
  readonly budget: { readonly percent: number; readonly minPerSecond: number };
}

export interface Mirror {
  readonly subset: string;
  readonly percent: number;
}

export interface Fault {
  readonly delay: { readonly fixedMs: number; readonly percent: number } | null;
  readonly abort: { readonly status: number; readonly percent: number } | null;
}

export interface RouteRule {
  readonly name: string | null;
  /** any one entry must match; empty: every request matches */
  readonly match: readonly RequestMatch[];
  readonly destinations: readonly WeightedDestination[];
  readonly stickiness: Stickiness | null;
  /** null: no total timeout */
  readonly timeoutMs: number | null;
  readonly retries: RetryPolicy | null;
  readonly mirror: Mirror | null;
  readonly fault: Fault | null;
}

export interface RouteConfig {
  readonly name: string;
  readonly namespace: string;
  readonly service: ServiceRef;
  /** in order; the first rule that matches a request routes it */
  readonly rules: readonly RouteRule[];
}

/** `prefix` is written `spiffe://td/ns/x/sa/*` (value without the *); `suffix` is written `*\/sa/web`. */
export type PrincipalMatch = { readonly type: 'any' } | { readonly type: 'exact' | 'prefix' | 'suffix'; readonly value: string };

/** `prefix` is written `/items/*` and its value is `/items/`. */
export type PolicyPathMatch = { readonly type: 'any' } | { readonly type: 'exact' | 'prefix'; readonly value: string };

/** Each list is one condition (any of its items); an empty list is no condition. */
export interface PolicySource {
  readonly principals: readonly PrincipalMatch[];
  readonly notPrincipals: readonly PrincipalMatch[];
  readonly namespaces: readonly string[];
  readonly notNamespaces: readonly string[];
}

export interface PolicyOperation {
  readonly methods: readonly string[];
  readonly notMethods: readonly string[];
  readonly paths: readonly PolicyPathMatch[];
  readonly notPaths: readonly PolicyPathMatch[];
  readonly ports: readonly number[];
  readonly notPorts: readonly number[];
}

export interface PolicyCondition {
  /** lowercase; every value of a repeated header counts */
  readonly header: string;
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

/** Matches when one of `from`, one of `to` and every `when` condition match (Istio semantics); an empty list is no condition. */
export interface PolicyRule {
  readonly from: readonly PolicySource[];
  readonly to: readonly PolicyOperation[];
  readonly when: readonly PolicyCondition[];
}

export interface AuthorizationPolicyConfig {
  readonly name: string;
  readonly namespace: string;
  readonly service: ServiceRef;
  readonly action: PolicyAction;
  /** no rules: matches no request (so an ALLOW policy with no rules allows nothing) */
  readonly rules: readonly PolicyRule[];
}

export interface CircuitBreakerConfig {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly consecutiveFailures: number;
  readonly resetTimeoutMs: number;
  readonly maxResetTimeoutMs: number;
}

export interface OutlierDetectionConfig {
  readonly consecutive5xx: number;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
}

export interface TrafficPolicySpec {
  readonly loadBalancer: { readonly type: LoadBalancerType };
  readonly connectionPool: { readonly maxConnections: number; readonly maxPendingRequests: number };
  /** null: no circuit breaker */
  readonly circuitBreaker: CircuitBreakerConfig | null;
  /** null: no outlier ejection */
  readonly outlierDetection: OutlierDetectionConfig | null;
}

export interface TrafficPolicyConfig extends TrafficPolicySpec {
  readonly name: string;
  readonly namespace: string;
  readonly service: ServiceRef;
}

export interface MeshConfig {
  readonly mesh: MeshSpec & { readonly name: string };
  readonly services: readonly ServiceConfig[];
  readonly routes: readonly RouteConfig[];
  readonly authorizationPolicies: readonly AuthorizationPolicyConfig[];
  readonly trafficPolicies: readonly TrafficPolicyConfig[];
  /** the YAML text this was compiled from */
  readonly source: string;
}
