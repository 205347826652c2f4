// A caller that resets its stream with NO_ERROR (node:http2's default for close()) while its request is held back
// by backpressure: node:http2 then leaves the stream closed but not destroyed, with no 'close' until its unread data
// is read. Through real sidecars and a node:http2 app that does not read its requests: the sidecar must treat the
// caller as gone (the app's stream cancelled), stay up when the app answers later, and count the call as ended.

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor, type SidecarProc } from '../helpers/mesh.ts';
import { h2AppMesh, type H2AppMesh } from '../helpers/h2-app-mesh.ts';
import { inFlight } from '../helpers/metrics.ts';

let app: http2.Http2Server;
let m: H2AppMesh;
let web: SidecarProc;
let caller: http2.ClientHttp2Session;
/** how each app stream ended: 'answered', or 'gone' when it closed before its answer was due */
const appStreams: string[] = [];

test.before(async () => {
  app = http2.createServer();
  app.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    // /svc/Quick answers at once; /svc/Slow 800 ms after it opened. Neither reads its request.
    const delay = headers[':path'] === '/svc/Quick' ? 0 : 800;
    setTimeout(() => {
      if (stream.destroyed || stream.closed) return void appStreams.push('gone');
      appStreams.push('answered');
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end('answer');
    }, delay);
  });
  m = await h2AppMesh(app);
  web = m.web;
  caller = m.connect();
});

test.after.always(async () => {
  await m?.stop();
});

const GRPC = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' };

test.serial('a caller that resets with NO_ERROR mid-request: the app is told, the sidecar stays up, nothing stays in flight', async (t) => {
  const req = caller.request({ ...GRPC, ':path': '/svc/Slow' });
  req.on('error', () => {});
  // Far more than the HTTP/2 windows hold, so the sidecars' relays pause on the unread request.
  req.write(Buffer.alloc(2 * 1024 * 1024));
  await sleep(200);
  req.close(http2.constants.NGHTTP2_NO_ERROR);
  // Past the app's answer: a sidecar that still relayed it would answer a stream that is closed.
  await sleep(1200);
  t.is(web.child.exitCode, null, `web's sidecar is still running: ${web.logs().slice(-2000)}`);
  t.deepEqual(appStreams, ['gone'], "the app's stream was cancelled before its answer was due");
  await waitFor('no request in flight at web', async () => (await inFlight(web)) === 0 || undefined, 5000);
  t.pass();
});

test.serial('after that, calls go through as before', async (t) => {
  const req = caller.request({ ...GRPC, ':path': '/svc/Quick' }, { endStream: true });
  let data = '';
  let trailers = null as http2.IncomingHttpHeaders | null;
  req.setEncoding('utf8').on('data', (d: string) => (data += d));
  req.on('trailers', (tr) => (trailers = tr));
  await once(req, 'close');
  t.is(data, 'answer');
  t.is(trailers?.['grpc-status'], '0');
});
