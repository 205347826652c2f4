// How a relayed HTTP/2 stream ends when the app ends it first, through real sidecars and a node:http2 app: an app
// that answers and then resets with NO_ERROR while the caller is still sending (RFC 9113 §8.1) ends the caller's
// call too; an app whose connection dies mid-answer is not reported as the caller cancelling (CANCEL, which
// gRPC reads as CANCELLED), but as UNAVAILABLE in the trailers (gRPC) or a reset with INTERNAL_ERROR.

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import { waitFor, type SidecarProc } from '../helpers/mesh.ts';
import { h2AppMesh, type H2AppMesh } from '../helpers/h2-app-mesh.ts';
import { inFlight } from '../helpers/metrics.ts';

let app: http2.Http2Server;
let m: H2AppMesh;
let web: SidecarProc;
let appSidecar: SidecarProc;
let caller: http2.ClientHttp2Session;

test.before(async () => {
  app = http2.createServer();
  app.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200, 'content-type': String(headers['content-type']) }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    // /answer: a whole answer at once (node:http2 then resets the stream with NO_ERROR, the request still open)
    if (headers[':path'] === '/svc/Answer') stream.end('answer');
    // /die: part of an answer, then the app's connection goes away
    else stream.write('part', () => setTimeout(() => stream.session?.socket.destroy(), 50));
  });
  m = await h2AppMesh(app);
  ({ web, appSidecar } = m);
  caller = m.connect();
});

test.after.always(async () => {
  await m?.stop();
});

interface Ended {
  readonly data: string;
  readonly trailers: http2.IncomingHttpHeaders | null;
  readonly rstCode: number | undefined;
}

/** A call whose request side stays open (a bidi call the other side finishes first); resolves when its stream closes. */
function callKeepingRequestOpen(path: string, contentType = 'application/grpc'): Promise<Ended> {
  const stream = caller.request({ ':method': 'POST', ':path': path, 'content-type': contentType, te: 'trailers' }, { endStream: false });
  stream.on('error', () => {});
  stream.write('request, not ended');
  let data = '';
  let trailers: http2.IncomingHttpHeaders | null = null;
  stream.setEncoding('utf8').on('data', (d: string) => (data += d));
  stream.on('trailers', (t) => (trailers = t));
  // A stream still open after 10 s is a failure, not something to wait on for ever.
  const stuck = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 10_000);
  return new Promise((resolve) => stream.on('close', () => (clearTimeout(stuck), resolve({ data, trailers, rstCode: stream.rstCode }))));
}

test.serial("an answer the app ends with a reset (NO_ERROR) ends the caller's call, and nothing stays in flight", async (t) => {
  const ended = await callKeepingRequestOpen('/svc/Answer');
  t.is(ended.data, 'answer');
  t.is(ended.trailers?.['grpc-status'], '0');
  t.is(ended.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  await waitFor('no request in flight at web', async () => (await inFlight(web)) === 0 || undefined);
  t.pass();
});

test.serial('an answer the app ends while a large request is held back by backpressure: both sidecars end the call', async (t) => {
  // The app never reads: the request (far past the HTTP/2 windows) stalls in both sidecars' relays when the answer
  // ends. Each must then drop the rest rather than wait on an upstream that is gone, else node:http2 never closes
  // the caller's stream there and the call never ends (in flight for ever, its observation never made).
  const stream = caller.request({ ':method': 'POST', ':path': '/svc/Answer', 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => {});
  let data = '';
  let trailers = null as http2.IncomingHttpHeaders | null;
  stream.setEncoding('utf8').on('data', (d: string) => (data += d));
  stream.on('trailers', (tr) => (trailers = tr));
  stream.end(Buffer.alloc(2 * 1024 * 1024));
  const stuck = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 10_000);
  await once(stream, 'close');
  clearTimeout(stuck);
  t.is(data, 'answer');
  t.is(trailers?.['grpc-status'], '0');
  await waitFor('no request in flight at the app', async () => (await inFlight(appSidecar)) === 0 || undefined, 5000);
  await waitFor('no request in flight at web', async () => (await inFlight(web)) === 0 || undefined, 5000);
  t.pass();
});

test.serial('an app whose connection dies mid-answer: a gRPC caller gets UNAVAILABLE in the trailers, not CANCELLED', async (t) => {
  const ended = await callKeepingRequestOpen('/svc/Die');
  t.is(ended.data, 'part');
  t.is(ended.trailers?.['grpc-status'], '14');
  t.is(ended.trailers?.['x-weft-reason'], 'upstream-reset');
  t.not(ended.rstCode, http2.constants.NGHTTP2_CANCEL);
});

test.serial('an app whose connection dies mid-answer: any other HTTP/2 caller gets a reset with INTERNAL_ERROR, not CANCEL', async (t) => {
  const ended = await callKeepingRequestOpen('/plain/die', 'application/octet-stream');
  t.is(ended.data, 'part');
  t.is(ended.rstCode, http2.constants.NGHTTP2_INTERNAL_ERROR);
});
