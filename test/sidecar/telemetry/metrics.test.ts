// Metrics, access logs and live status through real sidecars: /metrics passes `promtool check metrics` and its
// counters match the requests sent (by direction, caller, service, subset, status); TCP bytes and connections;
// policy denials; one access-log line per request; `weft status` (labels, ready) and `weft top`.

import test from 'ava';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { samplesOf } from '../../../cli/top/exposition.ts';
import { promtool, sample } from '../../helpers/metrics.ts';
import { tcpEcho, type App } from '../../helpers/apps.ts';
import { MeshMetrics } from '../../../sidecar/telemetry/metrics.ts';
import { weft } from '../../helpers/cli.ts';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../../helpers/mesh.ts';
import { meshYaml } from '../../helpers/mesh-yaml.ts';

const WEB_ID = 'spiffe://shop.example/ns/default/sa/web';
const CATALOG_ID = 'spiffe://shop.example/ns/default/sa/catalog';

const YAML = meshYaml({
  mesh: 'accessLog: true',
  services: { web: '{port: 8080}', catalog: '{port: 8081, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}', echo: '{port: 8083, protocol: tcp}' },
}) + `---
apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
    - name: canary
      match: [{headers: {x-canary: {exact: "true"}}}]
      destinations: [{subset: v2}]
    - name: stable
      destinations: [{subset: v1}]
---
apiVersion: weft/v1
kind: Service
metadata: {name: flaky}
spec: {port: 8084}
---
apiVersion: weft/v1
kind: Route
metadata: {name: flaky}
spec:
  service: flaky
  rules:
    - name: retry-503
      destinations: [{weight: 100}]
      retries: {attempts: 2, on: ["503"], budget: {percent: 100, minPerSecond: 100}}
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: flaky}
spec:
  service: flaky
  circuitBreaker: {consecutiveFailures: 4, volumeThreshold: 1000, resetTimeout: 1m, maxResetTimeout: 2m}
---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: catalog-no-admin}
spec:
  service: catalog
  action: DENY
  rules:
    - to: [{paths: ["/admin"]}]
`;

/** An app answering ?status=N (default 200) after ?delay=MS. */
async function statusApp(): Promise<App> {
  const seen: App['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    const u = new URL(req.url!, 'http://app');
    setTimeout(() => res.writeHead(Number(u.searchParams.get('status') ?? 200), { 'content-type': 'text/plain' }).end('ok'), Number(u.searchParams.get('delay') ?? 0));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, seen, close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

let mesh: TestMesh;
let apps: { v1: App; v2: App; echo: App; flaky: App };
let web: SidecarProc;
let v1: SidecarProc;
let v2: SidecarProc;
let echo: SidecarProc;
let flaky: SidecarProc;

function call(path: string, headers: Record<string, string> = {}): Promise<number> {
  return callFull(path, headers).then((r) => r.status);
}

function callFull(path: string, headers: Record<string, string> = {}): Promise<{ status: number; reason: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path, headers: { host: 'catalog', ...headers }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, reason: res.headers['x-weft-reason'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}


const accessLines = (p: SidecarProc) =>
  p
    .logs()
    .split('\n')
    .filter((l) => l.includes('"msg":"access"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

test.before(async () => {
  apps = { v1: await statusApp(), v2: await statusApp(), echo: await tcpEcho(), flaky: await statusApp() };
  mesh = await startMesh(YAML);
  [v1, v2, echo, flaky] = await Promise.all([
    mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: apps.v1.port }),
    mesh.sidecar({ service: 'catalog', labels: { version: 'v2' }, appPort: apps.v2.port }),
    mesh.sidecar({ service: 'echo', appPort: apps.echo.port }),
    mesh.sidecar({ service: 'flaky', appPort: apps.flaky.port }),
  ]);
  web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['echo'] });
  // Both catalog endpoints must be in web's config before counting starts.
  await waitFor('web to know both catalog subsets', async () => ((await call('/warm', { 'x-canary': 'true' })) === 200 && (await call('/warm')) === 200) || undefined);
});

test.after.always(async () => {
  await mesh?.stop();
  await Promise.all(Object.values(apps ?? {}).map((a) => a.close()));
});

test.serial('/metrics passes promtool and its counters match the requests sent, on both sides', async (t) => {
  const before = { web: (await web.admin('/metrics')).body, v1: (await v1.admin('/metrics')).body, v2: (await v2.admin('/metrics')).body };
  const sent: Promise<number>[] = [];
  for (let i = 0; i < 7; i++) sent.push(call(`/items/${i}`));
  for (let i = 0; i < 3; i++) sent.push(call(`/items/${i}`, { 'x-canary': 'true' }));
  for (let i = 0; i < 2; i++) sent.push(call(`/fail?status=503`));
  sent.push(call('/admin'));
  t.deepEqual((await Promise.all(sent)).sort(), [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 403, 503, 503]);

  const now = { web: (await web.admin('/metrics')).body, v1: (await v1.admin('/metrics')).body, v2: (await v2.admin('/metrics')).body };
  for (const [name, text] of Object.entries(now)) {
    const check = await promtool(text);
    t.is(check.code, 0, `promtool on ${name}'s /metrics: ${check.output}`);
  }
  const grew = (side: keyof typeof now, name: string, labels: Record<string, string>) => (sample(now[side], name, labels) || 0) - (sample(before[side], name, labels) || 0);
  const out = (subset: string, status: string, reason = '') => ({ direction: 'outbound', source_identity: WEB_ID, destination_service: 'catalog.default', destination_subset: subset, status_code: status, grpc_status: '', mesh_reason: reason });
  const inb = (subset: string, status: string, reason = '') => ({ direction: 'inbound', source_identity: WEB_ID, destination_service: 'catalog.default', destination_subset: subset, status_code: status, grpc_status: '', mesh_reason: reason });
  const { mesh_reason: _, grpc_status: __, ...noReason } = out('v1', '200');

  // The caller's side: by subset and status; the 403 came from catalog's sidecar, so web relayed it (no reason).
  t.is(grew('web', 'weft_requests_total', out('v1', '200')), 7);
  t.is(grew('web', 'weft_requests_total', out('v2', '200')), 3);
  t.is(grew('web', 'weft_requests_total', out('v1', '503')), 2);
  t.is(grew('web', 'weft_requests_total', out('v1', '403')), 1);
  t.is(grew('web', 'weft_request_duration_seconds_count', noReason), 7);
  t.is(sample(now.web, 'weft_requests_in_flight', { direction: 'outbound', source_identity: WEB_ID, destination_service: 'catalog.default' }), 0);

  // The destination's side: each subset counts its own; the denial is the mesh's answer, counted by policy and rule.
  t.is(grew('v1', 'weft_requests_total', inb('v1', '200')), 7);
  t.is(grew('v1', 'weft_requests_total', inb('v1', '503')), 2);
  t.is(grew('v1', 'weft_requests_total', inb('v1', '403', 'denied')), 1);
  t.is(grew('v2', 'weft_requests_total', inb('v2', '200')), 3);
  t.is(grew('v1', 'weft_policy_denials_total', { policy: 'default/catalog-no-admin', rule: '0' }), 1);
  t.is(grew('v2', 'weft_policy_denials_total', { policy: 'default/catalog-no-admin', rule: '0' }) || 0, 0);
  t.false(now.web.includes('/items/'), 'no raw path in any label');

  // The sidecar's own state.
  // The config may move on between two reads (a push while the test runs): read it on both sides of a scrape.
  const version = async () => (JSON.parse((await web.admin('/config')).body) as { version: number }).version;
  const first = await version();
  const scraped = sample((await web.admin('/metrics')).body, 'weft_config_version');
  const second = await version();
  t.true(scraped === first || scraped === second, `scraped ${scraped}, /config said ${first} then ${second}`);
  const certs = JSON.parse((await web.admin('/certs')).body) as { notAfter: string };
  t.is(sample(now.web, 'weft_ready'), 1);
  t.is(sample(now.web, 'weft_certificate_expiry_timestamp_seconds'), Math.floor(Date.parse(certs.notAfter) / 1000));
  t.true(sample(now.web, 'process_resident_memory_bytes') > 10 * 2 ** 20);
});

test.serial('each request is one JSON access-log line on each side, with identities, subset, status, duration and reason', async (t) => {
  const denied = await waitFor('the denial in catalog v1\'s access log', () => accessLines(v1).find((l) => l.path === '/admin'));
  t.like(denied, { direction: 'inbound', method: 'GET', status: 403, reason: 'denied', policy: 'default/catalog-no-admin#0', source: WEB_ID, destination: CATALOG_ID, destinationService: 'catalog.default', subset: 'v1', traceId: null });
  t.is(typeof denied.durationMs, 'number');
  const canary = accessLines(web).filter((l) => l.direction === 'outbound' && String(l.path).startsWith('/items/') && l.subset === 'v2');
  t.is(canary.length, 3);
  t.like(canary[0], { status: 200, source: WEB_ID, destination: CATALOG_ID, destinationService: 'catalog.default' });
  t.regex(String(canary[0]!.endpoint), /^127\.0\.0\.1:\d+$/);
  t.is(canary[0]!.reason, undefined, 'the app answered, not the mesh');
  // One line per request: 13 sent in the test before (plus the warm-up calls), none twice.
  t.is(accessLines(web).filter((l) => /^\/(items|fail|admin)/.test(String(l.path))).length, 13);
});

test.serial('accessLog: false in the Mesh stops the access log on every sidecar, live; requests are still counted', async (t) => {
  const configured = (value: boolean) => async () => {
    for (const s of [web, v1]) if ((JSON.parse((await s.admin('/config')).body) as { snapshot?: { mesh: { accessLog?: boolean } } }).snapshot?.mesh.accessLog !== value) return undefined;
    return true;
  };
  await mesh.apply(YAML.replace('accessLog: true', 'accessLog: false'));
  await waitFor('both sidecars to have accessLog off', configured(false));
  const lines = { web: accessLines(web).length, v1: accessLines(v1).length };
  const counted = () => v1.admin('/metrics').then((r) => samplesOf(r.body, 'v1').filter((x) => x.name === 'weft_requests_total').reduce((n, x) => n + x.value, 0));
  const before = await counted();
  t.deepEqual(await Promise.all([call('/quiet/1'), call('/quiet/2'), call('/quiet/3')]), [200, 200, 200]);
  await new Promise((r) => setTimeout(r, 300)); // log lines are written once per event-loop turn
  t.deepEqual({ web: accessLines(web).length, v1: accessLines(v1).length }, lines);
  t.true((await counted()) >= before + 3);

  await mesh.apply(YAML);
  await waitFor('both sidecars to have accessLog on again', configured(true));
  t.is(await call('/loud'), 200);
  await waitFor('the access log to be back', () => accessLines(web).find((l) => l.path === '/loud'));
});

test.serial('a raw TCP connection is counted with its bytes at the destination\'s sidecar', async (t) => {
  const s = net.connect(web.ports.upstreams.echo!, '127.0.0.1');
  s.setEncoding('utf8');
  await once(s, 'connect');
  s.write('hello\n');
  let got = '';
  while (!got.includes('\n')) got += (await once(s, 'data'))[0];
  t.is(got, 'echo: hello\n');
  s.end();
  await once(s, 'close');
  const labels = { direction: 'inbound', source_identity: WEB_ID, destination_service: 'echo.default' };
  const text = await waitFor('the connection to be closed at echo\'s sidecar', async () => {
    const body = (await echo.admin('/metrics')).body;
    return sample(body, 'weft_tcp_connections_closed_total', labels) === 1 ? body : undefined;
  });
  t.is(sample(text, 'weft_tcp_connections_opened_total', labels), 1);
  t.is(sample(text, 'weft_tcp_received_bytes_total', labels), 'hello\n'.length);
  t.is(sample(text, 'weft_tcp_sent_bytes_total', labels), 'echo: hello\n'.length);
  t.is((await promtool(text)).code, 0);
  t.like(accessLines(echo).find((l) => l.protocol === 'tcp'), { direction: 'inbound', source: WEB_ID, bytesReceived: 6, bytesSent: 12 });
});

test.serial('retries and circuit breaker state per endpoint are counted where the calls are made', async (t) => {
  // flaky's app answers 503: each call is tried three times (two retries), and the breaker opens after four failures.
  const first = await callFull('/x?status=503', { host: 'flaky' });
  t.is(first.status, 503);
  const reasons: (string | undefined)[] = [];
  for (let i = 0; i < 5 && !reasons.includes('circuit-open'); i++) reasons.push((await callFull('/x?status=503', { host: 'flaky' })).reason);
  t.true(reasons.includes('circuit-open'), `reasons: ${reasons}`);
  const text = (await web.admin('/metrics')).body;
  t.is((await promtool(text)).code, 0);
  const endpoint = `127.0.0.1:${flaky.ports.inbound}`;
  const state = (s: string) => sample(text, 'weft_circuit_breaker_state', { destination_service: 'flaky.default', endpoint, state: s });
  t.deepEqual([state('closed'), state('open'), state('half-open')], [0, 1, 0]);
  // The retries counted are those the requests reported, as the access log shows them.
  const logged = accessLines(web).filter((l) => l.destinationService === 'flaky.default').reduce((n, l) => n + Number(l.retries ?? 0), 0);
  t.true(logged >= 2, `retries in the access log: ${logged}`);
  t.is(sample(text, 'weft_retries_total', { destination_service: 'flaky.default', destination_subset: '' }), logged);
  t.like(accessLines(web).find((l) => l.destinationService === 'flaky.default'), { retries: 2, status: 503, breaker: 'closed' });
});

test.serial('weft status lists each sidecar\'s version labels and whether it is ready', async (t) => {
  const json = await weft(['status', '--state', mesh.state, '--json']);
  t.is(json.code, 0, json.stderr);
  const sidecars = (JSON.parse(json.stdout) as { sidecars: { service: string; labels: Record<string, string>; ready: boolean | null; admin: string }[] }).sidecars;
  t.is(sidecars.length, 5);
  t.true(sidecars.every((s) => s.ready === true));
  t.deepEqual(sidecars.filter((s) => s.service === 'catalog.default').map((s) => s.labels.version).sort(), ['v1', 'v2']);
  t.true(sidecars.some((s) => s.admin === `127.0.0.1:${web.ports.admin}`));
  const text = await weft(['status', '--state', mesh.state]);
  t.regex(text.stdout, /SIDECAR\s+SERVICE\s+IDENTITY\s+ACKED\s+SENT\s+STATE\s+CERT EXPIRES\s+READY\s+LABELS/);
  t.regex(text.stdout, /catalog\.default\s+spiffe:\S+\s+\d+\s+\d+\s+SYNCED\s+\S+\s+yes\s+version=v2/);
});

test.serial('weft top shows requests/s, success rate and p99 per service and subset, from the sidecars', async (t) => {
  // Steady traffic while top samples: v1 fails every other request; v2 answers after 30 ms.
  let running = true;
  const traffic = (async () => {
    for (let i = 0; running; i++) await Promise.all([call(i % 2 ? '/x?status=500' : '/x'), call('/x?delay=30', { 'x-canary': 'true' })]);
  })();
  try {
    const r = await weft(['top', '--once', '--interval', '2s', '--json', '--state', mesh.state]);
    t.is(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { windowSeconds: number; sidecars: number; rows: { service: string; subset: string; requestsPerSecond: number; successRate: number; p99Ms: number; requests: number }[] };
    t.is(report.sidecars, 5);
    t.true(report.windowSeconds >= 2);
    const row = (subset: string) => report.rows.find((x) => x.service === 'catalog.default' && x.subset === subset)!;
    t.true(row('v1').requests >= 10 && row('v2').requests >= 10, JSON.stringify(report.rows));
    t.true(Math.abs(row('v1').requestsPerSecond - row('v1').requests / report.windowSeconds) < 0.01);
    t.true(row('v1').successRate > 0.35 && row('v1').successRate < 0.65, `v1 success ${row('v1').successRate}`);
    t.is(row('v2').successRate, 1);
    // At least the app's 30 ms; the upper bound only rules out nonsense (a loaded 2-core machine stretches the tail).
    t.true(row('v2').p99Ms >= 25 && row('v2').p99Ms <= 1000, `v2 p99 ${row('v2').p99Ms} ms (answers take 30 ms)`);
    t.true(row('v1').p99Ms < row('v2').p99Ms, `v1 p99 ${row('v1').p99Ms} ms, v2 ${row('v2').p99Ms} ms`);

    const text = await weft(['top', '--once', '--interval', '1s', '--state', mesh.state]);
    t.is(text.code, 0, text.stderr);
    t.regex(text.stdout, /SERVICE\s+SUBSET\s+RPS\s+SUCCESS\s+P99\s+REQUESTS/);
    t.regex(text.stdout, /catalog\.default\s+v2\s+[\d.]+\s+100\.0%\s+\d+ ms/);
  } finally {
    running = false;
    await traffic;
  }
});

test('breaker state: one-hot per endpoint, and gone once its endpoint leaves the config', async (t) => {
  const m = new MeshMetrics(() => ({ ready: false, configVersion: null, certificateNotAfter: null }));
  m.breakerState('a.default', '127.0.0.1:1', 'closed');
  m.breakerState('a.default', '127.0.0.1:1', 'open');
  m.breakerState('a.default', '127.0.0.1:2', 'half-open');
  let text = await m.text();
  const state = (endpoint: string, s: string) => sample(text, 'weft_circuit_breaker_state', { destination_service: 'a.default', endpoint, state: s });
  t.deepEqual([state('127.0.0.1:1', 'closed'), state('127.0.0.1:1', 'open'), state('127.0.0.1:1', 'half-open')], [0, 1, 0]);
  t.deepEqual([state('127.0.0.1:2', 'closed'), state('127.0.0.1:2', 'open'), state('127.0.0.1:2', 'half-open')], [0, 0, 1]);
  m.pruneBreakers((_, endpoint) => endpoint === '127.0.0.1:2');
  text = await m.text();
  t.true(Number.isNaN(state('127.0.0.1:1', 'open')));
  t.is(state('127.0.0.1:2', 'half-open'), 1);
  t.is(sample(text, 'weft_ready'), 0);
  t.is(sample(text, 'weft_config_version'), -1);
  t.is((await promtool(text)).code, 0);
});

test('request counts follow each outcome when outcomes alternate, per caller and service (the lookups that skip the label maps)', async (t) => {
  const m = new MeshMetrics(() => ({ ready: true, configVersion: 1, certificateNotAfter: null }));
  // Identities as separate string objects per connection, as sidecars get them from each peer's certificate.
  const web = ['spiffe://shop.example/ns/default/sa/', 'web'].join('');
  const web2 = ['spiffe://shop.example/ns/default/sa/', 'web'].join('');
  const outcomes: [string, string, number, string, number | undefined][] = [
    [web, 'catalog.default', 200, '', undefined],
    [web2, 'catalog.default', 200, '', undefined],
    [web, 'catalog.default', 404, '', undefined],
    [web, 'catalog.default', 503, 'no-healthy-upstream', undefined],
    [web, 'catalog.default', 200, '', undefined],
    [web, 'prices.default', 200, '', 0],
    [web, 'prices.default', 200, '', 5],
    [web, 'prices.default', 200, '', 0],
    [web, 'catalog.default', 200, '', undefined],
  ];
  for (const [source, service, status, reason, grpc] of outcomes) {
    const series = m.requestStarted({ direction: 'outbound', source, service });
    m.requestEnded(series, service === 'prices.default' ? '' : 'v1', status, reason, 0.001, grpc);
  }
  const text = await m.text();
  const count = (service: string, subset: string, code: string, reason: string, grpc: string) =>
    sample(text, 'weft_requests_total', { direction: 'outbound', source_identity: 'spiffe://shop.example/ns/default/sa/web', destination_service: service, destination_subset: subset, status_code: code, grpc_status: grpc, mesh_reason: reason });
  t.is(count('catalog.default', 'v1', '200', '', ''), 4);
  t.is(count('catalog.default', 'v1', '404', '', ''), 1);
  t.is(count('catalog.default', 'v1', '503', 'no-healthy-upstream', ''), 1);
  t.is(count('prices.default', '', '200', '', '0'), 2);
  t.is(count('prices.default', '', '200', '', '5'), 1);
  t.is(sample(text, 'weft_requests_in_flight', { direction: 'outbound', source_identity: 'spiffe://shop.example/ns/default/sa/web', destination_service: 'catalog.default' }), 0);
  t.is((await promtool(text)).code, 0);
});
