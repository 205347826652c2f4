// A caller's trace context that is not valid W3C (upper-case hex, all-zero IDs, version ff, a version 00 header
// with more fields, a cut header) starts a new trace at the sidecar, fails no request, and is not passed on: not
// its traceparent, and not the tracestate that came with it (W3C Trace Context §3.3: a tracestate without a valid
// traceparent is discarded), so the app behind the mesh never sees a stranger's state on the mesh's new trace.

import test from 'ava';
import http from 'node:http';
import { httpEcho, type App } from '../../helpers/apps.ts';
import { startMesh, type SidecarProc, type TestMesh } from '../../helpers/mesh.ts';
import { meshYaml } from '../../helpers/mesh-yaml.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../../helpers/otlp-receiver.ts';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

let receiver: OtlpReceiver;
let mesh: TestMesh;
let app: App;
let web: SidecarProc;

test.before(async () => {
  receiver = await startOtlpReceiver();
  app = await httpEcho('catalog');
  mesh = await startMesh(meshYaml({ mesh: `tracing: {endpoint: "${receiver.url}", sampling: 1}`, services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
  await mesh.sidecar({ service: 'catalog', appPort: app.port });
  web = await mesh.sidecar({ service: 'web', appPort: 1 });
});

test.after.always(async () => {
  await mesh?.stop();
  await app?.close();
  await receiver?.close();
});

function call(path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: web.ports.outbound, path, headers: { host: 'catalog', ...headers }, agent: false }, (res) => (res.resume(), res.on('end', () => resolve(res.statusCode!))));
    req.on('error', reject);
    req.end();
  });
}

function seen(path: string): http.IncomingHttpHeaders {
  const s = app.seen.find((x) => x.url === path);
  if (!s) throw new Error(`the app never saw ${path}`);
  return s.headers;
}

const MALFORMED: readonly (readonly [string, string | undefined])[] = [
  ['upper-case hex', `00-${T.toUpperCase()}-${S}-01`],
  ['all-zero trace ID', `00-${'0'.repeat(32)}-${S}-01`],
  ['all-zero parent ID', `00-${T}-${'0'.repeat(16)}-01`],
  ['version ff', `ff-${T}-${S}-01`],
  ['version 00 with a fifth field', `00-${T}-${S}-01-extra`],
  ['cut short (54 characters)', `00-${T}-${S}-0`],
  ['garbage', 'not a traceparent'],
  ['no traceparent at all', undefined],
];

for (const [i, [title, traceparent]] of MALFORMED.entries()) {
  test(`a malformed traceparent (${title}) starts a new trace, and neither it nor its tracestate reaches the app`, async (t) => {
    const path = `/malformed-${i}`;
    t.is(await call(path, { ...(traceparent === undefined ? {} : { traceparent }), tracestate: 'stale=caller-state' }), 200);
    const h = seen(path);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(h.traceparent));
    t.truthy(m, `the app got a valid traceparent: ${h.traceparent}`);
    t.not(m?.[1], T, 'the trace is a new one');
    t.is(h.tracestate, undefined, 'the tracestate of a context that was refused is not passed on');
  });
}

test('a valid traceparent: its tracestate is kept (the control case)', async (t) => {
  t.is(await call('/valid', { traceparent: `00-${T}-${S}-01`, tracestate: 'vendor=kept' }), 200);
  t.regex(String(seen('/valid').traceparent), new RegExp(`^00-${T}-[0-9a-f]{16}-01$`));
  t.is(seen('/valid').tracestate, 'vendor=kept');
});
