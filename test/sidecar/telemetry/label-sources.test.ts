// Where label values come from: an app's answer cannot name a label value. An HTTP/2 or gRPC app that sends its
// own x-weft-reason (echoing a caller's input, say) must not become the mesh_reason of weft_requests_total, on its
// own sidecar or its caller's: one series per value sent would grow the sidecar's memory without bound, and the
// app would pass for the mesh.

import test from 'ava';
import http2 from 'node:http2';
import { samplesOf } from '../../../cli/top/exposition.ts';
import { h2AppMesh } from '../../helpers/h2-app-mesh.ts';
import { promtool } from '../../helpers/metrics.ts';
import { endH2Observation, type RequestEnd } from '../../../sidecar/telemetry/observer.ts';

const N = 20;

/** The mesh_reason values weft_requests_total shows. */
function reasons(text: string): Set<string> {
  return new Set(samplesOf(text, 'test').filter((s) => s.name === 'weft_requests_total').map((s) => s.labels.mesh_reason!));
}

test('an HTTP/2 app\'s own x-weft-reason (headers or gRPC trailers) is not a label value on either sidecar', async (t) => {
  const app = http2.createServer();
  app.on('stream', (stream, headers) => {
    const n = String(headers[':path']).slice(1);
    stream.on('error', () => {});
    if (String(headers['content-type']).startsWith('application/grpc')) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-weft-reason': `trailer-${n}` }));
      stream.end();
    } else stream.respond({ ':status': 200, 'x-weft-reason': `app-${n}` }, { endStream: true });
  });
  const m = await h2AppMesh(app);
  t.teardown(() => m.stop());
  const session = m.connect();
  const call = (path: string, grpc: boolean) =>
    new Promise<number>((resolve, reject) => {
      const req = session.request({ ':path': path, ':method': 'POST', 'content-type': grpc ? 'application/grpc' : 'text/plain' });
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('error', reject);
      req.on('close', () => resolve(status));
      req.resume();
      req.end();
    });
  for (let i = 0; i < N; i++) {
    t.is(await call(`/${i}`, false), 200);
    t.is(await call(`/${i}`, true), 200);
  }
  for (const [who, sidecar] of [['the app\'s sidecar', m.appSidecar], ['the caller\'s sidecar', m.web]] as const) {
    const text = (await sidecar.admin('/metrics')).body;
    t.deepEqual([...reasons(text)], [''], `${who}: mesh_reason values ${[...reasons(text)].slice(0, 5).join(', ')}…`);
    t.is((await promtool(text)).code, 0);
  }
});

test('a stream\'s x-weft-reason counts only as one of the mesh\'s own reasons (the bound holds whatever a relay lets through)', (t) => {
  const ended: RequestEnd[] = [];
  const obs = { propagate: {}, set() {}, end: (o: RequestEnd) => void ended.push(o) };
  endH2Observation(obs, { sentHeaders: { ':status': 200, 'x-weft-reason': 'app-made-0' } }, false);
  endH2Observation(obs, { sentHeaders: { ':status': 200 }, sentTrailers: { 'grpc-status': '0', 'x-weft-reason': 'app-made-1' } }, true);
  endH2Observation(obs, { sentHeaders: { ':status': 503, 'x-weft-reason': 'no-healthy-upstream' } }, false);
  endH2Observation(obs, { sentHeaders: { ':status': 200 }, sentTrailers: { 'grpc-status': '14', 'x-weft-reason': 'upstream-reset' } }, true);
  t.deepEqual(ended.map((e) => e.reason), [undefined, undefined, 'no-healthy-upstream', 'upstream-reset']);
});
