import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isWeftError } from '../../../errors.ts';
import {
  authorizationPoliciesFor,
  ConfigError,
  findService,
  formatIssue,
  loadMeshConfigFile,
  parseMeshConfigOrThrow,
  routeFor,
  serviceKey,
  trafficPolicyFor,
  type ServiceConfig,
} from '../../../control-plane/config/index.ts';
import { tempDir } from '../../helpers/ca.ts';
import { REPO } from '../../helpers/cli.ts';
import { CATALOG, file, load, MESH, WEB } from './fixture.ts';

const EXAMPLE = join(REPO, 'examples/shop/mesh.yaml');

test('the example shop loads and compiles: identities, canary route, policies, breaker', async (t) => {
  const result = await loadMeshConfigFile(EXAMPLE);
  if (!result.ok) return t.fail(result.errors.map(formatIssue).join('\n'));
  const config = result.config;
  t.is(config.source, readFileSync(EXAMPLE, 'utf8'));
  t.deepEqual(config.mesh, {
    name: 'shop',
    trustDomain: 'shop.example',
    mtls: { mode: 'STRICT' },
    certificates: { workloadTtlMs: 3_600_000 },
    defaultPolicy: 'allow-authenticated',
    accessLog: true,
    streamIdleTimeoutMs: 300_000,
    tracing: { endpoint: 'http://127.0.0.1:4318/v1/traces', sampling: 1 },
  });
  t.deepEqual(
    config.services.map((s) => [s.name, s.port, s.protocol, s.identity, s.subsets.map((x) => x.name)]),
    [
      ['web', 8080, 'http', 'spiffe://shop.example/ns/default/sa/web', []],
      ['catalog', 8081, 'http', 'spiffe://shop.example/ns/default/sa/catalog', ['v1', 'v2']],
      ['prices', 8082, 'grpc', 'spiffe://shop.example/ns/default/sa/prices', []],
      ['ingress', 8000, 'http', 'spiffe://shop.example/ns/default/sa/ingress', []],
    ],
  );
  const catalog = findService(config, 'catalog', 'default')!;
  t.deepEqual(catalog.subsets[1], { name: 'v2', labels: { version: 'v2' } });

  const route = routeFor(config, catalog)!;
  t.deepEqual(route.service, { name: 'catalog', namespace: 'default' });
  const [canary, split] = route.rules;
  t.deepEqual(canary!.match, [{ path: null, methods: [], headers: [{ name: 'x-canary', type: 'exact', value: 'true' }] }]);
  t.deepEqual(canary!.destinations, [{ subset: 'v2', weight: 100 }]);
  t.deepEqual(split!.match, []);
  t.deepEqual(split!.destinations, [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }]);
  t.is(split!.timeoutMs, 2000);
  t.deepEqual(split!.retries, { attempts: 2, perTryTimeoutMs: 500, on: { connectFailure: true, reset: true, statuses: [503], grpcStatuses: [] }, budget: { percent: 20, minPerSecond: 3 } });

  const [allowWeb] = authorizationPoliciesFor(config, catalog);
  t.is(allowWeb!.action, 'ALLOW');
  t.deepEqual(allowWeb!.rules[0]!.from[0]!.principals, [{ type: 'exact', value: 'spiffe://shop.example/ns/default/sa/web' }]);
  t.deepEqual(authorizationPoliciesFor(config, { name: 'prices', namespace: 'default' })[0]!.rules[0]!.from[0]!.principals, [{ type: 'exact', value: 'spiffe://shop.example/ns/default/sa/catalog' }]);
  t.deepEqual(authorizationPoliciesFor(config, { name: 'web', namespace: 'default' }).map((p) => p.rules[0]!.from[0]!.principals), [[{ type: 'exact', value: 'spiffe://shop.example/ns/default/sa/ingress' }]]);
  // Nothing in the mesh may call the ingress: an ALLOW policy with no rules.
  t.deepEqual(authorizationPoliciesFor(config, { name: 'ingress', namespace: 'default' }).map((p) => [p.action, p.rules.length]), [['ALLOW', 0]]);

  t.deepEqual(trafficPolicyFor(config, catalog).circuitBreaker, { errorThresholdPercentage: 50, volumeThreshold: 20, consecutiveFailures: 5, resetTimeoutMs: 10_000, maxResetTimeoutMs: 120_000 });
  // A service with no TrafficPolicy gets the defaults.
  t.deepEqual(trafficPolicyFor(config, { name: 'web', namespace: 'default' }), { loadBalancer: { type: 'p2c-ewma' }, connectionPool: { maxConnections: 1024, maxPendingRequests: 1024 }, circuitBreaker: null, outlierDetection: null });
});

test('every omitted field gets its default', (t) => {
  const text = file(
    MESH,
    WEB,
    CATALOG,
    `apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
    - destinations: [{subset: v1}]
      retries: {}
      mirror: {subset: v2}
      fault: {abort: {status: 503}}
      stickiness: {header: X-User}`,
    `apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec:
  service: web`,
    `apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: catalog}
spec:
  service: catalog.default
  circuitBreaker: {}
  outlierDetection: {}`,
  );
  const { config, errors } = load(text);
  if (!config) return t.fail(errors.map(formatIssue).join('\n'));
  t.deepEqual(config.mesh, { name: 'mesh', trustDomain: 'shop.example', mtls: { mode: 'STRICT' }, certificates: { workloadTtlMs: 3_600_000 }, defaultPolicy: 'allow-authenticated', accessLog: false, streamIdleTimeoutMs: 300_000, tracing: null });
  t.deepEqual(config.services[0], { name: 'web', namespace: 'default', port: 8080, protocol: 'http', serviceAccount: 'web', identity: 'spiffe://shop.example/ns/default/sa/web', subsets: [] });
  const rule = config.routes[0]!.rules[0]!;
  t.deepEqual(rule, {
    name: null,
    match: [],
    destinations: [{ subset: 'v1', weight: 100 }],
    stickiness: { type: 'header', name: 'x-user' },
    timeoutMs: null,
    retries: { attempts: 2, perTryTimeoutMs: null, on: { connectFailure: true, reset: true, statuses: [], grpcStatuses: [] }, budget: { percent: 20, minPerSecond: 3 } },
    mirror: { subset: 'v2', percent: 100 },
    fault: { delay: null, abort: { status: 503, percent: 100 } },
  });
  t.deepEqual(config.authorizationPolicies[0], { name: 'deny-all', namespace: 'default', service: { name: 'web', namespace: 'default' }, action: 'ALLOW', rules: [] });
  const tp = config.trafficPolicies[0]!;
  t.deepEqual(tp.service, { name: 'catalog', namespace: 'default' });
  t.deepEqual(tp.loadBalancer, { type: 'p2c-ewma' });
  t.deepEqual(tp.circuitBreaker, { errorThresholdPercentage: 50, volumeThreshold: 20, consecutiveFailures: 5, resetTimeoutMs: 10_000, maxResetTimeoutMs: 120_000 });
  t.deepEqual(tp.outlierDetection, { consecutive5xx: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 });
});

test('gRPC statuses to retry on compile to their codes, next to HTTP statuses, for a grpc service', (t) => {
  const { config, errors } = load(
    file(
      MESH,
      'apiVersion: weft/v1\nkind: Service\nmetadata: {name: prices}\nspec: {port: 8082, protocol: grpc}',
      'apiVersion: weft/v1\nkind: Route\nmetadata: {name: prices}\nspec:\n  service: prices\n  rules:\n    - destinations: [{}]\n      retries: {on: [unavailable, resource-exhausted, cancelled, deadline-exceeded, internal, "503"]}',
    ),
  );
  t.deepEqual(errors, []);
  t.deepEqual(config!.routes[0]!.rules[0]!.retries!.on, { connectFailure: false, reset: false, statuses: [503], grpcStatuses: [14, 8, 1, 4, 13] });
});

test('streamIdleTimeout: a duration up to 24h, in ms; 0s turns it off', (t) => {
  for (const [text, ms] of [['90s', 90_000], ['0s', 0], ['24h', 86_400_000], ['1s500ms', 1500]] as const) {
    const { config, errors } = load(file(MESH.replace('trustDomain: shop.example', `trustDomain: shop.example\n  streamIdleTimeout: ${text}`)));
    if (!config) return t.fail(errors.map(formatIssue).join('\n'));
    t.is(config.mesh.streamIdleTimeoutMs, ms, text);
  }
});

test('namespaces, service accounts and name.namespace references resolve', (t) => {
  const text = file(
    MESH,
    `apiVersion: weft/v1
kind: Service
metadata: {name: ledger, namespace: billing}
spec: {port: 9000, protocol: tcp, serviceAccount: ledger-writer.v2}`,
    `apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: ledger, namespace: shop}
spec:
  service: ledger.billing
  action: DENY
  rules: [{to: [{notPorts: [9000]}]}]`,
  );
  const { config, errors } = load(text);
  if (!config) return t.fail(errors.map(formatIssue).join('\n'));
  const ledger = findService(config, 'ledger', 'billing')!;
  t.is(ledger.identity, 'spiffe://shop.example/ns/billing/sa/ledger-writer.v2');
  t.is(findService(config, 'ledger'), undefined);
  t.is(serviceKey('ledger', 'billing'), 'ledger.billing');
  t.deepEqual(config.authorizationPolicies[0]!.service, { name: 'ledger', namespace: 'billing' });
  t.is(config.authorizationPolicies[0]!.namespace, 'shop');
});

test('the compiled config is deeply immutable', (t) => {
  const config = parseMeshConfigOrThrow(file(MESH, CATALOG), 'mesh.yaml');
  t.throws(() => (config.services as ServiceConfig[]).push(config.services[0]!), { instanceOf: TypeError });
  t.throws(() => {
    (config.services[0]!.subsets[0]!.labels as Record<string, string>).version = 'v9';
  }, { instanceOf: TypeError });
  t.throws(() => {
    (config.mesh.mtls as { mode: string }).mode = 'PERMISSIVE';
  }, { instanceOf: TypeError });
  t.is(config.services[0]!.subsets[0]!.labels.version, 'v1');
});

test('parseMeshConfigOrThrow throws a ConfigError (WEFT_CONFIG_INVALID) carrying every issue', (t) => {
  const err = t.throws(() => parseMeshConfigOrThrow(file(MESH, 'apiVersion: weft/v1\nkind: Service\nmetadata: {name: web}\nspec: {port: 0, prot: http}\n'), 'bad.yaml'), { instanceOf: ConfigError })!;
  t.true(isWeftError(err, 'WEFT_CONFIG_INVALID'));
  t.is(err.status, 400);
  t.is(err.issues.length, 2);
  t.deepEqual(err.issues.map((i) => [i.line, i.column, i.path]), [
    [11, 14, 'spec.port'],
    [11, 17, 'spec.prot'],
  ]);
  t.regex(err.message, /^bad\.yaml: 2 errors; nothing was applied/);
  t.true(err.message.includes('\n  bad.yaml:11:14: Service default/web spec.port: 0 is out of range; it must be between 1 and 65535'), err.message);
  t.deepEqual((err.toJSON().details as { issues: unknown[] }).issues.length, 2);
});

test('loadMeshConfigFile reports a missing file as an issue, and reads a real one', async (t) => {
  const missing = await loadMeshConfigFile('/nonexistent/mesh.yaml');
  t.false(missing.ok);
  if (!missing.ok) t.regex(formatIssue(missing.errors[0]!), /^\/nonexistent\/mesh\.yaml:1:1: cannot read the file \(ENOENT\)/);
  const path = join(tempDir(), 'mesh.yaml');
  writeFileSync(path, file(MESH, WEB));
  const ok = await loadMeshConfigFile(path);
  t.true(ok.ok);
  if (ok.ok) t.is(ok.config.services[0]!.name, 'web');
});

test('empty documents (a trailing ---, comments) are skipped, an empty file has no Mesh', (t) => {
  const { config } = load(`# the shop\n---\n${file(MESH, WEB)}---\n# nothing more\n`);
  t.is(config?.services.length, 1);
  const empty = load('');
  t.deepEqual(empty.errors.map(formatIssue), ['mesh.yaml:1:1: the config has no Mesh document; add one (kind: Mesh) with spec.trustDomain, e.g. shop.example']);
});

test('anchors and aliases work; alias expansion is bounded; an oversized file is refused', (t) => {
  const aliased = load(file(MESH, 'apiVersion: weft/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  port: 8080\n  subsets:\n    - {name: v1, labels: &v1 {version: v1, tier: front}}\n    - {name: v1b, labels: *v1}'));
  t.deepEqual(aliased.config?.services[0]!.subsets[1], { name: 'v1b', labels: { version: 'v1', tier: 'front' } });

  const laughs = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 9; i++) laughs.push(`${'abcdefghi'[i]}: &${'abcdefghi'[i]} [${Array(10).fill(`*${'abcdefghi'[i - 1]}`).join(',')}]`);
  const bomb = load(file(MESH, laughs.join('\n')));
  t.is(bomb.errors.length, 1);
  t.regex(formatIssue(bomb.errors[0]!), /^mesh\.yaml:8:1: document 2: YAML: Excessive alias count/);

  const huge = load(`${MESH}#${'x'.repeat(4 * 1024 * 1024)}\n`);
  t.regex(formatIssue(huge.errors[0]!), /^mesh\.yaml:1:1: the file is larger than 4194304 characters/);
});
