// The snapshot's wire shape, checked before anything is compiled: a value of the wrong type, or a missing field,
// refuses the whole snapshot. A field this sidecar does not know is a newer control plane's (control planes are
// upgraded before their sidecars, as Istio's are): ignored and reported, as Envoy ignores unknown fields in dynamic
// config, except inside an authorization policy, where ignoring a condition could let through what the policy
// refuses: there it refuses the snapshot (fail closed).
//
// Hand-written rather than a TypeBox schema: every sidecar runs it, and TypeBox's value checker is memory a
// sidecar otherwise never loads. Mirrors control-plane/snapshot/types.ts and control-plane/config/types.ts.

/** A primitive type, one of some strings, or a structure. */
type Shape =
  | 'string'
  | 'number'
  | 'boolean'
  | { readonly oneOf: readonly string[] }
  | { readonly nullable: Shape }
  | { readonly list: Shape }
  | { readonly record: Shape }
  | { readonly fields: Readonly<Record<string, Shape>>; readonly optional?: readonly string[] }
  /** within it, an unknown field refuses the snapshot */
  | { readonly strict: Shape };

const oneOf = (...values: string[]): Shape => ({ oneOf: values });
const list = (of: Shape): Shape => ({ list: of });
const nullable = (of: Shape): Shape => ({ nullable: of });
const fields = (f: Record<string, Shape>, optional?: string[]): Shape => ({ fields: f, optional });
const numbers = (...names: string[]): Shape => fields(Object.fromEntries(names.map((n) => [n, 'number'])));

const SERVICE_REF = fields({ name: 'string', namespace: 'string' });
const SERVICE = fields({
  name: 'string', namespace: 'string', port: 'number', protocol: oneOf('http', 'http2', 'grpc', 'tcp'), serviceAccount: 'string', identity: 'string',
  subsets: list(fields({ name: 'string', labels: { record: 'string' } })),
});
const REQUEST_MATCH = fields({
  path: nullable(fields({ type: oneOf('exact', 'prefix', 'regex'), value: 'string' })),
  methods: list('string'),
  // `value` for every type but present (checked when the route compiles)
  headers: list(fields({ name: 'string', type: oneOf('exact', 'prefix', 'regex', 'present'), value: 'string' }, ['value'])),
});
const RULE = fields({
  name: nullable('string'),
  match: list(REQUEST_MATCH),
  destinations: list(fields({ subset: nullable('string'), weight: 'number' })),
  stickiness: nullable(fields({ type: oneOf('header', 'cookie'), name: 'string' })),
  timeoutMs: nullable('number'),
  retries: nullable(fields({
    attempts: 'number',
    perTryTimeoutMs: nullable('number'),
    on: fields({ connectFailure: 'boolean', reset: 'boolean', statuses: list('number'), grpcStatuses: list('number') }),
    budget: numbers('percent', 'minPerSecond'),
  })),
  mirror: nullable(fields({ subset: 'string', percent: 'number' })),
  fault: nullable(fields({ delay: nullable(numbers('fixedMs', 'percent')), abort: nullable(numbers('status', 'percent')) })),
});
const TRAFFIC_POLICY = fields({
  loadBalancer: fields({ type: oneOf('p2c-ewma', 'round-robin') }),
  connectionPool: numbers('maxConnections', 'maxPendingRequests'),
  circuitBreaker: nullable(numbers('errorThresholdPercentage', 'volumeThreshold', 'consecutiveFailures', 'resetTimeoutMs', 'maxResetTimeoutMs')),
  outlierDetection: nullable(numbers('consecutive5xx', 'intervalMs', 'baseEjectionTimeMs', 'maxEjectionPercent')),
});
const UPSTREAM = fields({
  service: SERVICE,
  hosts: list('string'),
  expectedIdentities: list('string'),
  endpoints: list(fields({ address: 'string', labels: { record: 'string' } })),
  route: nullable(fields({ name: 'string', namespace: 'string', service: SERVICE_REF, rules: list(RULE) })),
  trafficPolicy: nullable(TRAFFIC_POLICY),
});
const PRINCIPAL = fields({ type: oneOf('any', 'exact', 'prefix', 'suffix'), value: 'string' }, ['value']);
const POLICY_PATH = fields({ type: oneOf('any', 'exact', 'prefix'), value: 'string' }, ['value']);
const AUTHORIZATION_POLICY: Shape = { strict: fields({
  name: 'string', namespace: 'string', service: SERVICE_REF, action: oneOf('ALLOW', 'DENY', 'AUDIT'),
  rules: list(fields({
    from: list(fields({ principals: list(PRINCIPAL), notPrincipals: list(PRINCIPAL), namespaces: list('string'), notNamespaces: list('string') })),
    to: list(fields({ methods: list('string'), notMethods: list('string'), paths: list(POLICY_PATH), notPaths: list(POLICY_PATH), ports: list('number'), notPorts: list('number') })),
    when: list(fields({ header: 'string', values: list('string'), notValues: list('string') })),
  })),
}) };
const MESH = fields({
  trustDomain: 'string',
  mtls: fields({ mode: oneOf('STRICT', 'PERMISSIVE') }),
  certificates: numbers('workloadTtlMs'),
  defaultPolicy: oneOf('allow-authenticated', 'deny'),
  accessLog: 'boolean',
  streamIdleTimeoutMs: 'number',
  tracing: nullable(fields({ endpoint: 'string', sampling: 'number' })),
}, ['streamIdleTimeoutMs']); // a control plane from before the field sends none
const SNAPSHOT = fields({
  service: fields({ name: 'string', namespace: 'string', identity: 'string' }),
  mesh: MESH,
  inbound: fields({ service: nullable(SERVICE), authorizationPolicies: list(AUTHORIZATION_POLICY) }),
  upstreams: list(UPSTREAM),
  trustBundle: 'string',
  revokedSerials: list('string'),
});

/**
 * Throws, naming the first place where `body` is not a snapshot this sidecar can apply; returns where it holds
 * fields this sidecar does not know and ignores (e.g. `snapshot.mesh.rateLimit`).
 */
export function checkSnapshotShape(body: unknown): string[] {
  const ignored: string[] = [];
  check(SNAPSHOT, body, 'snapshot', ignored, false);
  return ignored;
}

function check(shape: Shape, v: unknown, at: string, ignored: string[], strict: boolean): void {
  const fail = (want: string): never => {
    throw new Error(`${at}: expected ${want}, got ${v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : JSON.stringify(v)}`);
  };
  if (shape === 'string' || shape === 'boolean') return void (typeof v === shape || fail(`a ${shape}`));
  if (shape === 'number') return void ((typeof v === 'number' && Number.isFinite(v)) || fail('a number'));
  if ('oneOf' in shape) return void ((typeof v === 'string' && shape.oneOf.includes(v)) || fail(`one of ${shape.oneOf.map((s) => JSON.stringify(s)).join(', ')}`));
  if ('strict' in shape) return check(shape.strict, v, at, ignored, true);
  if ('nullable' in shape) return v === null ? undefined : check(shape.nullable, v, at, ignored, strict);
  if ('list' in shape) {
    if (!Array.isArray(v)) fail('a list');
    (v as unknown[]).forEach((item, i) => check(shape.list, item, `${at}[${i}]`, ignored, strict));
    return;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('an object');
  const obj = v as Record<string, unknown>;
  if ('record' in shape) {
    for (const [k, item] of Object.entries(obj)) check(shape.record, item, `${at}.${k}`, ignored, strict);
    return;
  }
  for (const k of Object.keys(obj)) {
    if (Object.hasOwn(shape.fields, k)) continue;
    if (strict) throw new Error(`${at}: unknown field "${k}" in an authorization policy (from a newer control plane? upgrade this sidecar): refused rather than ignored`);
    ignored.push(`${at}.${k}`);
  }
  for (const [k, s] of Object.entries(shape.fields)) {
    if (!Object.hasOwn(obj, k)) {
      if (!shape.optional?.includes(k)) throw new Error(`${at}: missing field "${k}"`);
      continue;
    }
    check(s, obj[k], `${at}.${k}`, ignored, strict);
  }
}
