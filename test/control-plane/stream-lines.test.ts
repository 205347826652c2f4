// The full-duplex snapshot stream (control-plane/api/stream-lines.ts): a sidecar's ACKs, NACKs and heartbeats as
// JSON lines up the stream's own request body. What they change (status, liveness), and what the control plane
// does with a line it must not accept: it ends the stream with an `error` event naming the line and what was wrong.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { join } from 'node:path';
import { isWeftError } from '../../errors.ts';
import { LineSplitter, parseStreamLine } from '../../control-plane/api/stream-lines.ts';
import { MESH_YAML, startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { weft } from '../helpers/cli.ts';
import { bootstrap, StubSidecar, type StubOptions, type Svid } from '../helpers/stub-sidecar.ts';

type Status = { version: number; sidecars: { id: string; ack: string; ackedVersion: number | null; nackError: string | null; lastSeen: string }[] };

async function svidFor(cp: TestControlPlane, service: string): Promise<Svid> {
  const op = cp.operator();
  const { token } = await op.request<{ token: string }>('POST', '/v1/tokens', { service, namespace: 'default' });
  op.close();
  return bootstrap(cp.conn, token);
}

async function stub(cp: TestControlPlane, service: string, opts: Partial<StubOptions> = {}): Promise<StubSidecar> {
  const s = new StubSidecar({ ...cp.conn, service, reports: 'stream', ...opts }, await svidFor(cp, service));
  await s.connect();
  return s;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A stream request written by hand, with the sidecar's certificate: the bytes on the wire are the test's. */
function rawStream(cp: TestControlPlane, svid: Svid, contentType = 'application/x-ndjson') {
  let text = '';
  let status = 0;
  const req = https.request({
    host: '127.0.0.1', port: Number(new URL(cp.conn.url).port), method: 'POST', path: '/v1/sidecars/stream', agent: false,
    ca: cp.conn.ca, cert: svid.chain, key: svid.key, servername: '', checkServerIdentity: () => undefined, headers: { 'content-type': contentType },
  });
  const ended = new Promise<void>((resolve) => {
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('close', () => resolve());
    });
    req.on('error', () => resolve());
  });
  return { req, ended, text: () => text, status: () => status };
}

function registration(id: string, service = 'web') {
  return JSON.stringify({ id, service, namespace: 'default', labels: {}, address: '127.0.0.1:7300' }) + '\n';
}

test('LineSplitter: lines across chunks, CRLF and blank lines; the limit counts a line split over chunks', (t) => {
  const cases: [string[], string[]][] = [
    [['{"a":1}\n{"b"', ':2}\n'], ['{"a":1}', '{"b":2}']],
    [['x\r\n', '\n', '  \n', 'y'], ['x']],
    [['é'.repeat(3) + '\n'], ['ééé']],
  ];
  for (const [chunks, lines] of cases) {
    const splitter = new LineSplitter();
    t.deepEqual(chunks.flatMap((c) => splitter.push(Buffer.from(c)).map((l) => l.text)), lines, JSON.stringify(chunks));
  }
  // A multi-byte character split between two chunks is joined before decoding.
  const euro = Buffer.from('€\n');
  const split = new LineSplitter();
  t.deepEqual([...split.push(euro.subarray(0, 1)), ...split.push(euro.subarray(1))].map((l) => l.text), ['€']);
  const splitter = new LineSplitter();
  splitter.push(Buffer.from('{}\n'));
  splitter.push(Buffer.alloc(16 * 1024, 0x20));
  const err = t.throws(() => splitter.push(Buffer.from('x')));
  t.true(isWeftError(err, 'WEFT_API_TOO_LARGE'));
  t.is(err!.message, 'stream line 2 is longer than 16384 bytes');
});

test('parseStreamLine: what each report line becomes', (t) => {
  t.deepEqual(parseStreamLine('{"type":"ack","id":"a","version":7,"ok":false,"error":"' + 'e'.repeat(3000) + '"}', 2, 'a'), { type: 'ack', version: 7, ok: false, error: 'e'.repeat(2000) });
  t.deepEqual(parseStreamLine('{"type":"heartbeat","id":"a"}', 3, 'a'), { type: 'heartbeat' });
  t.deepEqual(parseStreamLine('{"type":"later","id":"a"}', 4, 'a'), { type: 'unknown', name: 'later' });
  const refusals: [string, RegExp][] = [
    ['[1]', /^stream line 5 is not a JSON object$/],
    ['{"id":"a"}', /^stream line 5 has no "type"/],
    ['{"type":"ack","id":"a","version":"7","ok":true}', /"version" must be an integer/],
    ['{"type":"ack","id":"a","version":7,"ok":"yes"}', /"ok" must be true or false/],
    ['{"type":"heartbeat"}', /^stream line 5 speaks for sidecar undefined, but this stream registered a/],
  ];
  for (const [line, message] of refusals) t.regex(t.throws(() => parseStreamLine(line, 5, 'a'))!.message, message, line);
});

test('ACKs and NACKs up the stream: weft status shows the sidecars SYNCED at the latest version, then a NACK with its reason', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  let refuse = false;
  const web = await stub(cp, 'web', { verdict: () => (refuse ? 'route catalog: unsupported field' : true) });
  const catalog = await stub(cp, 'catalog', { labels: { version: 'v1' }, address: '127.0.0.1:7001' });
  t.teardown(() => (web.close(), catalog.close()));
  const op = cp.operator();
  t.teardown(() => op.close());
  const state = join(cp.dir, 'state');

  const applied = await op.request<{ version: number }>('PUT', '/v1/config', MESH_YAML.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'), { contentType: 'application/yaml' });
  const synced = await until('both SYNCED at the applied version', async () => {
    const report = JSON.parse((await weft(['status', '--json', '--state', state])).stdout) as Status;
    return report.sidecars.length === 2 && report.sidecars.every((s) => s.ack === 'SYNCED' && s.ackedVersion === report.version) ? report : undefined;
  });
  t.true(synced.version >= applied.version);

  refuse = true;
  const refused = await op.request<{ version: number }>('PUT', '/v1/config', MESH_YAML.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'), { contentType: 'application/yaml' });
  await web.waitFor((s) => s.version >= refused.version);
  const out = await until('the NACK in weft status', async () => {
    const o = (await weft(['status', '--state', state])).stdout;
    return o.includes('NACK of version') ? o : undefined;
  });
  t.regex(out, new RegExp(`${web.id}\\s+web\\.default\\s+spiffe://shop\\.example/ns/default/sa/web\\s+\\d+\\s+${refused.version}\\s+NACK`));
  t.regex(out, new RegExp(`NACK of version ${refused.version}: route catalog: unsupported field`));
  // No call carried them: the stream is still the one they were sent on.
  t.is(await Promise.race([web.closed, new Promise((r) => setTimeout(() => r('open'), 100))]), 'open');
});

test('a sidecar heard from only by its stream lines outlives the heartbeat timeout; silent, it is removed', async (t) => {
  const cp = await startControlPlane({ heartbeatTimeoutMs: 1000 });
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  await web.waitFor(() => true);
  const beat = setInterval(() => void web.heartbeat(), 200);
  t.teardown(() => clearInterval(beat));
  const op = cp.operator();
  t.teardown(() => op.close());
  await new Promise((r) => setTimeout(r, 2500));
  const status = await op.request<Status>('GET', '/v1/status');
  t.deepEqual(status.sidecars.map((s) => s.id), [web.id]);
  t.true(Date.now() - Date.parse(status.sidecars[0]!.lastSeen) < 1000, status.sidecars[0]!.lastSeen);
  t.is(await Promise.race([web.closed, new Promise((r) => setTimeout(() => r('open'), 50))]), 'open', 'its stream was never ended');
  clearInterval(beat);
  await until('the silent sidecar to be removed', async () => ((await op.request<Status>('GET', '/v1/status')).sidecars.length === 0 || undefined));
  await web.closed;
  t.pass();
});

const refusals: [string, (id: string) => string, RegExp, string][] = [
  ['a line that is not JSON', () => '{"type":"ack",\n', /^stream line 2 is not JSON: /, 'WEFT_API_BAD_REQUEST'],
  ['an ACK without a version', (id) => JSON.stringify({ type: 'ack', id, ok: true }) + '\n', /^stream line 2 \(ack\): "version" must be an integer$/, 'WEFT_API_BAD_REQUEST'],
  ['a line longer than 16 KiB (no newline needed)', () => `{"type":"heartbeat","pad":"${'x'.repeat(17 * 1024)}`, /^stream line 2 is longer than 16384 bytes$/, 'WEFT_API_TOO_LARGE'],
  ['an ACK for another sidecar', () => JSON.stringify({ type: 'ack', id: 'someone-else', version: 1, ok: true }) + '\n', /^stream line 2 speaks for sidecar "someone-else", but this stream registered \S+; a sidecar reports only for itself$/, 'WEFT_AUTH_FORBIDDEN'],
  ['101 lines at once', (id) => (JSON.stringify({ type: 'heartbeat', id }) + '\n').repeat(101), /^stream line 102 is over the limit of 100 lines at once and 20 a second$/, 'WEFT_API_RATE_LIMITED'],
];

for (const [what, line, message, code] of refusals) {
  test(`${what} ends the stream with an error event naming the line, logged, and the sidecar leaves`, async (t) => {
    const logs: Record<string, unknown>[] = [];
    const cp = await startControlPlane({ log: (e) => logs.push(e) });
    t.teardown(() => cp.cp.stop());
    const svid = await svidFor(cp, 'web');
    const id = 'raw-web-1';
    const s = rawStream(cp, svid);
    t.teardown(() => s.req.destroy());
    s.req.write(registration(id));
    await until('the first snapshot', async () => (s.text().includes('event: snapshot') || undefined));
    s.req.write(line(id));
    await Promise.race([s.ended, new Promise((_, reject) => setTimeout(() => reject(new Error(`stream not ended; got ${s.text().slice(-300)}`)), 5000))]);
    const error = /event: error\ndata: (.*)\n\n/.exec(s.text());
    t.truthy(error, s.text().slice(-300));
    const sent = JSON.parse(error![1]!) as { code: string; message: string };
    t.is(sent.code, code);
    t.regex(sent.message, message);
    const logged = logs.find((e) => e.msg === 'sidecar stream line refused; closing the stream');
    t.like(logged, { id, code, error: sent.message });
    const op = cp.operator();
    t.teardown(() => op.close());
    t.deepEqual((await op.request<Status>('GET', '/v1/status')).sidecars, []);
  });
}

test('a line of a type it does not know is ignored (logged once); the stream goes on', async (t) => {
  const logs: Record<string, unknown>[] = [];
  const cp = await startControlPlane({ log: (e) => logs.push(e) });
  t.teardown(() => cp.cp.stop());
  const web = await stub(cp, 'web');
  t.teardown(() => web.close());
  const first = await web.waitFor(() => true);
  t.true(web.sendRaw({ type: 'telemetry', id: web.id, cpu: 0.5 }));
  t.true(web.sendRaw({ type: 'telemetry', id: web.id, cpu: 0.6 }));
  t.true(web.sendRaw({ type: 'ack', id: web.id, version: first.version, ok: true }));
  const op = cp.operator();
  t.teardown(() => op.close());
  await until('the ACK after them', async () => ((await op.request<Status>('GET', '/v1/status')).sidecars[0]?.ackedVersion === first.version || undefined));
  t.is(logs.filter((e) => e.msg === 'sidecar stream line of an unknown type ignored (told once per stream)').length, 1);
  // Line 3: line 1 was the registration, line 2 the stub's ACK of its first snapshot.
  t.like(logs.find((e) => String(e.msg).startsWith('sidecar stream line of an unknown type')), { id: web.id, type: 'telemetry', line: 3 });
});

test('a registration line that is not JSON is answered 400 naming it, and the connection closed', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const s = rawStream(cp, await svidFor(cp, 'web'));
  t.teardown(() => s.req.destroy());
  s.req.write('id=web\n');
  await Promise.race([s.ended, new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer: ${s.status()} ${s.text()}`)), 5000))]);
  t.is(s.status(), 400);
  t.regex(JSON.parse(s.text()).error.message, /^stream line 1 \(the registration\) is not a JSON object: /);
});

test('random lines: each stream goes on or ends with an error event the sidecar can read; the control plane lives', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const svid = await svidFor(cp, 'web');
  const id = 'fuzzed-web';
  const errors = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const s = rawStream(cp, svid);
    s.req.write(registration(id));
    await until('the first snapshot', async () => (s.text().includes('event: snapshot') || undefined));
    const garbage = i % 2 === 0 ? randomBytes(1 + (i * 37) % 400) : Buffer.from(JSON.stringify({ type: i % 3 ? 'ack' : 'heartbeat', id: i % 5 ? id : 7, version: i % 7 ? i : 'v', ok: i % 4 ? true : null }) + '\n');
    s.req.end(garbage);
    await Promise.race([s.ended, new Promise((_, reject) => setTimeout(() => reject(new Error(`stream ${i} not ended`)), 5000))]);
    const error = /event: error\ndata: (.*)\n\n/.exec(s.text());
    if (error) errors.add((JSON.parse(error[1]!) as { code: string }).code);
  }
  t.true(errors.size > 0, 'some lines were refused');
  t.true([...errors].every((c) => /^WEFT_(API_BAD_REQUEST|API_TOO_LARGE|AUTH_FORBIDDEN)$/.test(c)), [...errors].join());
  const anon = cp.anonymous();
  t.teardown(() => anon.close());
  t.deepEqual(await anon.request('GET', '/healthz'), { ok: true });
});
