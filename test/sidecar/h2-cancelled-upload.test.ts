// An upload the mesh cancels must never look complete to the app. node:http2's close(code) ends a stream's
// writable side before it submits RST_STREAM, so a relay that cancelled its upstream stream that way sent the app
// END_STREAM (the request whole, as far as a plain HTTP/2 app can tell) before the reset. Through real sidecars, a
// plain HTTP/2 app (no gRPC framing to catch a short message) records whether each request ended before its reset.

import test from 'ava';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { addAbortSignal } from 'node:stream';
import { once } from 'node:events';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { headerRule, meshYaml, routeYaml } from '../helpers/mesh-yaml.ts';

/** What the app saw of one upload: its bytes, whether it ended while not reset (an app would store it), its reset. */
interface Upload {
  bytes: number;
  complete: boolean;
  rstCode?: number;
  closed: boolean;
}

const uploads = new Map<string, Upload>();
let app: http2.Http2Server;
let mesh: TestMesh;
let web: SidecarProc;
let caller: http2.ClientHttp2Session;

test.before(async () => {
  // As an upload handler: it reads the body and answers (having stored the file) only at its end.
  app = http2.createServer();
  app.on('stream', (stream, headers) => {
    const upload: Upload = { bytes: 0, complete: false, closed: false };
    uploads.set(String(headers['x-upload']), upload);
    stream.on('error', () => {});
    stream.on('data', (d: Buffer) => (upload.bytes += d.length));
    stream.on('close', () => ((upload.rstCode = stream.rstCode), (upload.closed = true)));
    // Refuses at once, as an app does an upload over its size limit, without waiting for the rest.
    if (headers['x-upload'] === 'refused') {
      stream.respond({ ':status': 413 });
      stream.end('too large\n');
      return;
    }
    stream.on('end', () => {
      // node:http2 also ends the readable side of a reset stream; only an end before the reset is a whole request.
      if (stream.aborted || stream.closed) return;
      upload.complete = true;
      stream.respond({ ':status': 201 });
      stream.end();
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const route = routeYaml('files', `${headerRule('x-rule', 'deadline', '      timeout: 300ms\n')}    - destinations: [{weight: 100}]\n`);
  mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', files: '{port: 8085, protocol: http2}' }, extra: route }));
  await mesh.sidecar({ service: 'files', appPort: (app.address() as AddressInfo).port });
  web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['files'] });
  caller = http2.connect(`http://127.0.0.1:${web.ports.upstreams.files}`);
});

test.after.always(async () => {
  caller?.destroy();
  await mesh?.stop();
  await new Promise((resolve) => app?.close(resolve));
});

/** Starts an upload of `name` and writes its first 1000 bytes, which reach the app; the request stays open. */
async function startUpload(name: string, headers: http2.OutgoingHttpHeaders = {}): Promise<http2.ClientHttp2Stream> {
  const req = caller.request({ ':method': 'POST', ':path': '/files/report.bin', 'x-upload': name, ...headers });
  req.on('error', () => {});
  req.resume();
  req.write(Buffer.alloc(1000, 'a'));
  await waitFor(`the app has the first 1000 bytes of ${name}`, async () => (uploads.get(name)?.bytes === 1000) || undefined, 5000);
  return req;
}

/** The app's record of `name` once its stream has closed. */
async function closedUpload(name: string): Promise<Upload> {
  await waitFor(`the app's stream for ${name} has closed`, async () => uploads.get(name)?.closed || undefined, 5000);
  return uploads.get(name)!;
}

test.serial('a caller that resets its stream mid-upload: the app sees a reset (CANCEL), never a whole request', async (t) => {
  const req = await startUpload('caller-reset');
  // RST_STREAM(CANCEL) with no END_STREAM before it: node:http2's destroy with an AbortError, not close(), which
  // would end the caller's own request first.
  addAbortSignal(AbortSignal.abort(), req);
  const upload = await closedUpload('caller-reset');
  t.false(upload.complete, 'the app never saw the cancelled upload end as a whole request');
  t.is(upload.rstCode, http2.constants.NGHTTP2_CANCEL);
  t.is(upload.bytes, 1000);
});

test.serial("the route's timeout gives up a try mid-upload: the caller gets 504, the app a reset, never a whole request", async (t) => {
  const req = await startUpload('route-timeout', { 'x-rule': 'deadline' });
  const [head] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  t.is(Number(head[':status']), 504);
  t.is(head['x-weft-reason'], 'timeout');
  const upload = await closedUpload('route-timeout');
  t.false(upload.complete, 'the app never saw the given-up upload end as a whole request');
  t.is(upload.rstCode, http2.constants.NGHTTP2_CANCEL);
  req.destroy();
});

test.serial('an upload that is not cancelled still reaches the app whole', async (t) => {
  const req = await startUpload('whole');
  req.end(Buffer.alloc(500, 'b'));
  const [head] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  t.is(Number(head[':status']), 201);
  const upload = await closedUpload('whole');
  t.true(upload.complete);
  t.is(upload.bytes, 1500);
});

test.serial('an app that answers before the upload has ended (413): the caller gets that answer whole, not a reset', async (t) => {
  const req = caller.request({ ':method': 'POST', ':path': '/files/huge.bin', 'x-upload': 'refused' });
  req.on('error', () => {});
  req.write(Buffer.alloc(1000, 'a'));
  let body = '';
  req.setEncoding('utf8').on('data', (d: string) => (body += d));
  const [head] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  t.is(Number(head[':status']), 413);
  await once(req, 'close');
  t.is(body, 'too large\n');
  t.not(req.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR, 'the answer was not cut off with a reset');
});
