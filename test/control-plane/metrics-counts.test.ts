// What the control plane's counters count, event by event, read from its metrics port as Prometheus would:
// certificates issued and refused (a renewal over its rate limit, a reused or bad token, a revoked certificate, a
// CSR naming another identity), NACKs, and stream lines refused. Real control plane and sockets, stub sidecars;
// then the pure parts (refusal reasons, convergence time) with a clock the test moves.

import test from 'ava';
import { isWeftError, WeftError, type ErrorCode } from '../../errors.ts';
import { ControlPlaneMetrics, refusalReason, type RefusalReason } from '../../control-plane/metrics.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { PER_CERTIFICATE } from '../../control-plane/api/renewal-budget.ts';
import { CATALOG, makeCsr } from '../helpers/ca.ts';
import { MESH_YAML, startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { sample } from '../helpers/metrics.ts';
import { waitFor } from '../helpers/mesh.ts';
import { bootstrap, csrFor, StubSidecar, type StubOptions, type Svid } from '../helpers/stub-sidecar.ts';

const P = 'weft_control_plane_';

async function start(): Promise<TestControlPlane> {
  return startControlPlane({ frozenClock: true, metrics: { host: '127.0.0.1', port: 0 } });
}

async function scrape(cp: TestControlPlane): Promise<string> {
  const res = await fetch(cp.cp.metricsUrl!);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  return res.text();
}


async function renew(client: ControlPlaneClient, csr?: string): Promise<Svid> {
  const keys = generateKeyPair();
  const r = await client.request<{ chain: string; identity: string; serial: string; notAfter: string }>('POST', '/v1/identity/renew', { csr: csr ?? (await csrFor(keys)) });
  return { chain: r.chain, key: privateKeyToPem(keys.privateKey), identity: r.identity, serial: r.serial, notAfter: r.notAfter };
}

const mtls = (cp: TestControlPlane, svid: Svid) => new ControlPlaneClient({ ...cp.conn, cert: svid.chain, key: svid.key });
const refused = (text: string, kind: string, reason: string) => sample(text, `${P}certificate_requests_refused_total`, { kind, reason });
const issued = (text: string, kind: string) => sample(text, `${P}certificates_issued_total`, { kind });

test('renewals count as issued; one refused by its rate limit (429) counts as rate_limited and issues nothing', async (t) => {
  const cp = await start();
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const client = mtls(cp, svid);
  t.teardown(() => client.close());
  for (let i = 0; i < PER_CERTIFICATE.burst; i++) await renew(client);
  const before = await scrape(cp);
  t.is(issued(before, 'bootstrap'), 1);
  t.is(issued(before, 'renewal'), PER_CERTIFICATE.burst);
  t.is(refused(before, 'renewal', 'rate_limited'), 0, 'the series is there before the first refusal');

  const limited = (await t.throwsAsync(renew(client))) as WeftError;
  t.true(isWeftError(limited, 'WEFT_API_RATE_LIMITED'), limited.message);
  const after = await scrape(cp);
  t.is(refused(after, 'renewal', 'rate_limited'), 1);
  t.is(issued(after, 'renewal'), PER_CERTIFICATE.burst);
});

test('bootstrap refusals count by reason: a reused token, a bad one; renewal refusals: no certificate, another identity, revoked', async (t) => {
  const cp = await start();
  t.teardown(() => cp.cp.stop());
  const token = await cp.tokenFor('web');
  const svid = await bootstrap(cp.conn, token);
  await t.throwsAsync(bootstrap(cp.conn, token), { instanceOf: Error, message: /already used/ });
  await t.throwsAsync(bootstrap(cp.conn, 'not.a.token'), { message: /not valid/ });
  const anonymous = cp.anonymous();
  t.teardown(() => anonymous.close());
  await t.throwsAsync(renew(anonymous), { message: /workload certificate over mutual TLS/ });
  const client = mtls(cp, svid);
  t.teardown(() => client.close());
  // A CSR asking for catalog's name over web's certificate: the CA signs only the caller's identity.
  await t.throwsAsync(renew(client, (await makeCsr({ sans: [{ type: 'url', value: CATALOG }] })).pem), { message: /catalog/ });
  const op = cp.operator();
  t.teardown(() => op.close());
  await op.request('POST', '/v1/revocations', { serial: svid.serial });
  await t.throwsAsync(renew(client), { message: /revoked/ });

  const text = await scrape(cp);
  t.is(issued(text, 'bootstrap'), 1);
  t.is(issued(text, 'renewal'), 0);
  t.is(refused(text, 'bootstrap', 'token_replayed'), 1);
  t.is(refused(text, 'bootstrap', 'token_invalid'), 1);
  t.is(refused(text, 'renewal', 'unauthenticated'), 1);
  t.is(refused(text, 'renewal', 'identity_mismatch'), 1);
  t.is(refused(text, 'renewal', 'revoked'), 1);
  t.is(refused(text, 'renewal', 'rate_limited'), 0);
});

async function stub(cp: TestControlPlane, service: string, opts: Partial<StubOptions> = {}): Promise<StubSidecar> {
  const s = new StubSidecar({ ...cp.conn, service, ...opts }, await bootstrap(cp.conn, await cp.tokenFor(service)));
  await s.connect();
  return s;
}

test('a NACK counts as nack and not as converged; a line a sidecar may not send counts by reason', async (t) => {
  const cp = await startControlPlane({ metrics: { host: '127.0.0.1', port: 0 } });
  t.teardown(() => cp.cp.stop());
  let refuse = false;
  const web = await stub(cp, 'web', { reports: 'stream', verdict: () => (refuse ? 'route catalog: unsupported field' : true) });
  t.teardown(() => web.close());
  // At rest: its full snapshot ACKed, and the push its own registration made (an endpoint change, 100 ms later).
  const before = await waitFor('the mesh at rest', async () => {
    const text = await scrape(cp);
    const rest = sample(text, `${P}snapshot_acks_total`, { result: 'ack' }) === 2 && sample(text, `${P}push_convergence_seconds_count`) === 1 && sample(text, `${P}sidecars_by_state`, { state: 'synced' }) === 1;
    return rest ? text : undefined;
  });
  refuse = true;
  const op = cp.operator();
  t.teardown(() => op.close());
  await op.request('PUT', '/v1/config', MESH_YAML.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'), { contentType: 'application/yaml' });
  const after = await waitFor('the NACK', async () => {
    const text = await scrape(cp);
    return sample(text, `${P}sidecars_by_state`, { state: 'nack' }) === 1 ? text : undefined;
  });
  t.is(sample(after, `${P}snapshot_acks_total`, { result: 'nack' }), 1);
  t.is(sample(after, `${P}snapshot_acks_total`, { result: 'ack' }), sample(before, `${P}snapshot_acks_total`, { result: 'ack' }));
  t.is(sample(after, `${P}push_convergence_seconds_count`), sample(before, `${P}push_convergence_seconds_count`), 'a refused version has not converged');
  t.is(sample(after, `${P}config_applies_total`, { result: 'applied' }), 1);

  // A line speaking for another sidecar ends the stream, and is counted.
  web.sendRaw({ type: 'heartbeat', id: 'someone-else' });
  const closed = await waitFor('the refused line', async () => {
    const text = await scrape(cp);
    return sample(text, `${P}stream_lines_rejected_total`, { reason: 'wrong_sidecar' }) === 1 ? text : undefined;
  });
  t.is(sample(closed, `${P}stream_lines_rejected_total`, { reason: 'malformed' }), 0);
  t.is(await waitFor('the stream to close', async () => sample(await scrape(cp), `${P}sidecars_connected`, { namespace: 'default', service: 'web' }) === 0 || undefined), true);
});

test('refusal reasons: the label each error a certificate request can end with counts under', (t) => {
  const table: [ErrorCode, RefusalReason][] = [
    ['WEFT_API_RATE_LIMITED', 'rate_limited'],
    ['WEFT_TOKEN_INVALID', 'token_invalid'],
    ['WEFT_TOKEN_EXPIRED', 'token_expired'],
    ['WEFT_TOKEN_REPLAYED', 'token_replayed'],
    ['WEFT_CA_CSR_NAME_MISMATCH', 'identity_mismatch'],
    ['WEFT_CA_WRONG_TRUST_DOMAIN', 'identity_mismatch'],
    ['WEFT_AUTH_FORBIDDEN', 'identity_mismatch'],
    ['WEFT_CERT_REVOKED', 'revoked'],
    ['WEFT_CERT_EXPIRED', 'certificate_expired'],
    ['WEFT_AUTH_REQUIRED', 'unauthenticated'],
    ['WEFT_API_BAD_REQUEST', 'bad_request'],
    ['WEFT_CA_CSR_SIGNATURE', 'bad_request'],
    ['WEFT_API_TIMEOUT', 'bad_request'],
    ['WEFT_CA_ISSUER_EXPIRED', 'ca_unavailable'],
    ['WEFT_CA_KEY_MISMATCH', 'internal'],
  ];
  for (const [code, reason] of table) t.is(refusalReason(new WeftError(code, 'x')), reason, code);
  t.is(refusalReason(new TypeError('a bug')), 'internal');
});

test('convergence time: from the change to each ACK of its version, by the clock given; never a NACK, a first snapshot, or a version long gone', (t) => {
  let now = 10_000;
  const m = new ControlPlaneMetrics({ sidecars: () => [], services: () => [], snapshotVersion: () => 0, configVersion: () => 0 }, () => now);
  const series = () => {
    const text = m.text();
    return { count: sample(text, `${P}push_convergence_seconds_count`), sum: sample(text, `${P}push_convergence_seconds_sum`), le100ms: sample(text, `${P}push_convergence_seconds_bucket`, { le: '0.1' }), le250ms: sample(text, `${P}push_convergence_seconds_bucket`, { le: '0.25' }) };
  };
  m.versionMade(1795682706166, 10_000);
  now = 10_250;
  m.ack(1795682706166, true, true);
  m.ack(1795682706166, false, true);
  m.ack(1795682706166, true, false);
  t.deepEqual(series(), { count: 1, sum: 0.25, le100ms: 0, le250ms: 1 });
  t.is(sample(m.text(), `${P}snapshot_acks_total`, { result: 'ack' }), 2);
  t.is(sample(m.text(), `${P}snapshot_acks_total`, { result: 'nack' }), 1);
  // 1,024 versions later the first one's time is gone: its late ACK is counted, not timed.
  for (let v = 1795682706167; v <= 1795682706166 + 1024; v++) m.versionMade(v, 10_300);
  now = 10_400;
  m.ack(1795682706166, true, true);
  m.ack(1795682706167, true, true);
  t.deepEqual(series(), { count: 2, sum: 0.35, le100ms: 1, le250ms: 2 });
});
