// HTTP/2 streams refused unprocessed (RST_STREAM REFUSED_STREAM, or past a GOAWAY's last stream id), through real
// sidecars to node:http2 apps: the call is made again on another endpoint, with or without a retry policy, and the
// apps process it once; a request past the 64 KiB kept for a retry is not sent again; without a policy it is sent
// again once only, under one within the policy's attempts whatever its `on` names.

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startMesh, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml, routeYaml } from '../helpers/mesh-yaml.ts';

/** What the apps did with each path: streams opened, and those answered (processed), with the body each got. */
const streams = new Map<string, number>();
const answered = new Map<string, { app: string; body: number }[]>();
const refusedBy = new Map<string, string[]>();

/**
 * An h2c app. Per path (counted across both apps, so that a second try may land on either), by what it contains:
 * `/refuse-once/` refuses its first stream at once; `/goaway-once/` sends a GOAWAY whose last stream id is below
 * its first stream's; `/refuse-after-body/` refuses every stream once the request has ended; `/refuse/` refuses
 * every stream; any other path is answered with the length of the request body.
 */
async function app(name: string): Promise<{ server: http2.Http2Server; port: number }> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = String(headers[':path']);
    const n = (streams.get(path) ?? 0) + 1;
    streams.set(path, n);
    if (path.includes('/refuse/') || (path.includes('/refuse-once/') && n === 1)) {
      refusedBy.set(path, [...(refusedBy.get(path) ?? []), name]);
      return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    }
    if (path.includes('/goaway-once/') && n === 1) return stream.session!.goaway(http2.constants.NGHTTP2_NO_ERROR, Math.max(0, stream.id! - 2));
    let body = 0;
    stream.on('data', (d: Buffer) => (body += d.length));
    stream.on('end', () => {
      if (path.includes('/refuse-after-body/')) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      answered.set(path, [...(answered.get(path) ?? []), { app: name, body }]);
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end(`${name} got ${body} bytes`);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

// The tests run one at a time: a GOAWAY refuses every stream past its last stream id, another test's too.
let apps: { server: http2.Http2Server }[] = [];
let mesh: TestMesh;
let web: SidecarProc;
let caller: http2.ClientHttp2Session;

test.before(async () => {
  const [a, b] = await Promise.all([app('a'), app('b')]);
  apps = [a!, b!];
  mesh = await startMesh(meshYaml({
    services: { web: '{port: 8080}', store: '{port: 8082, protocol: grpc}' },
    // /policy/…: a retry policy (2 retries) that names only a status; anything else: no retry policy.
    extra: routeYaml('store', [
      '    - match: [{path: {prefix: /policy/}}]',
      '      destinations: [{weight: 100}]',
      '      retries: {attempts: 2, on: ["503"], budget: {percent: 100, minPerSecond: 100}}',
      '    - destinations: [{weight: 100}]',
      '',
    ].join('\n')),
  }));
  await mesh.sidecar({ service: 'store', appPort: a!.port });
  await mesh.sidecar({ service: 'store', appPort: b!.port });
  web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['store'] });
  caller = http2.connect(`http://127.0.0.1:${web.ports.upstreams.store}`);
});

test.after.always(async () => {
  caller?.destroy();
  await mesh?.stop();
  for (const a of apps) a.server.close();
});

/** A POST of `bytes` bytes through web's sidecar; resolves with the answer, or the reset that ended the stream. */
async function post(path: string, bytes = 1024): Promise<{ status: number; reason: string | undefined; body: string; rstCode: number | undefined }> {
  const stream = caller.request({ ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream' });
  stream.on('error', () => {});
  // A call still open after 10 s is a failure to report, not something to wait on until ava's timeout.
  stream.setTimeout(10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
  let head: http2.IncomingHttpHeaders = {};
  let body = '';
  stream.on('response', (h) => (head = h));
  stream.setEncoding('utf8').on('data', (d: string) => (body += d));
  stream.end(Buffer.alloc(bytes, 'x'));
  await once(stream, 'close');
  return { status: Number(head[':status'] ?? 0), reason: head['x-weft-reason'] as string | undefined, body, rstCode: stream.rstCode };
}

test.serial('a stream the app refuses (REFUSED_STREAM) is sent again to the other endpoint, without a retry policy', async (t) => {
  const r = await post('/refuse-once/a', 2000);
  t.is(r.status, 200, r.body);
  t.is(streams.get('/refuse-once/a'), 2);
  // Processed once, whole, by the app that did not refuse it.
  const [done] = answered.get('/refuse-once/a') ?? [];
  t.is(answered.get('/refuse-once/a')?.length, 1);
  t.deepEqual(done, { app: refusedBy.get('/refuse-once/a')![0] === 'a' ? 'b' : 'a', body: 2000 });
  t.is(r.body, `${done!.app} got 2000 bytes`);
});

test.serial('a stream past a GOAWAY\'s last stream id is sent again on a new connection', async (t) => {
  const r = await post('/goaway-once/b');
  t.is(r.status, 200, r.body);
  t.is(streams.get('/goaway-once/b'), 2);
  t.is(answered.get('/goaway-once/b')?.length, 1);
});

test.serial('a request past the 64 KiB kept for a retry is not sent again: 503 upstream-refused, saying why', async (t) => {
  const r = await post('/refuse-after-body/c', 100 * 1024);
  t.is(r.status, 503);
  t.is(r.reason, 'upstream-refused');
  t.regex(r.body, /refused the stream without processing it \(REFUSED_STREAM\); not sent again, as its request went past the 65536 bytes kept for a retry/);
  t.is(streams.get('/refuse-after-body/c'), 1);
  t.is(answered.get('/refuse-after-body/c'), undefined);
});

test.serial('without a retry policy a refused stream is sent again once only', async (t) => {
  const r = await post('/refuse/d');
  t.is(r.status, 503);
  t.is(r.reason, 'upstream-refused');
  t.regex(r.body, /refused the stream without processing it \(REFUSED_STREAM\) on a second try too/);
  t.is(streams.get('/refuse/d'), 2);
});

test.serial('under a retry policy that names only a status, a refused stream is still retried, within its attempts', async (t) => {
  const r = await post('/policy/refuse-once/e');
  t.is(r.status, 200, r.body);
  t.is(streams.get('/policy/refuse-once/e'), 2);
  t.is(answered.get('/policy/refuse-once/e')?.length, 1);
  const refused = await post('/policy/refuse/f');
  t.is(refused.status, 503);
  t.is(refused.reason, 'upstream-refused');
  t.regex(refused.body, /refused the stream without processing it \(REFUSED_STREAM\) \(after 2 retries\)$/m);
  t.is(streams.get('/policy/refuse/f'), 3, 'the first try and the policy\'s two retries');
});
