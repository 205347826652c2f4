// An answer that is whole before its request: the call is over (gRPC's status ends the RPC). As Envoy does for HTTP/2,
// the sidecars stop relaying the request, cancel the app's stream and end the caller's with NO_ERROR, whatever the
// app does next: it may reset its stream with an error code after a trailers-only answer (the caller still gets that
// answer, not a reset), or neither read nor close it (nothing stays open, waiting on it). Through real sidecars and a
// node:http2 app.

import test from 'ava';
import http2 from 'node:http2';
import { waitFor, type SidecarProc } from '../helpers/mesh.ts';
import { h2AppMesh, type H2AppMesh } from '../helpers/h2-app-mesh.ts';
import { inFlight } from '../helpers/metrics.ts';

let app: http2.Http2Server;
let m: H2AppMesh;
let web: SidecarProc;
let appSidecar: SidecarProc;
/** the app's streams by path */
const appStreams = new Map<string, http2.ServerHttp2Stream>();

test.before(async () => {
  app = http2.createServer();
  app.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = String(headers[':path']);
    appStreams.set(path, stream);
    // Neither reads its request; paused, so that node:http2 does not close the stream by itself once answered. (Nor
    // does it emit 'close' then, with the request unread: whether the stream is closed is read from `closed`.)
    stream.pause();
    if (path === '/svc/NotFound') {
      // A trailers-only answer, then at once a reset with an error code (as some servers end a stream whose request is
      // still open): the sidecar reads both before it could reset the stream itself.
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'no such thing' }, { endStream: true });
      stream.close(http2.constants.NGHTTP2_CANCEL);
      return;
    }
    // A whole answer; the stream is then left open, its request unread.
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end('answer');
  });
  m = await h2AppMesh(app);
  ({ web, appSidecar } = m);
});

test.after.always(async () => {
  await m?.stop();
});

interface Ended {
  readonly head: http2.IncomingHttpHeaders;
  readonly data: string;
  readonly trailers: http2.IncomingHttpHeaders | null;
  readonly rstCode: number | undefined;
  readonly error: string | null;
}

/**
 * A call whose request is `request` (not ended unless `end`); `onTrailers` runs when the trailers come. Resolves when
 * its stream closes (a stream open after 10 s is closed with CANCEL, and the test fails on that).
 */
function callWith(path: string, request: Buffer, end: boolean, onTrailers: (stream: http2.ClientHttp2Stream) => void = () => {}): Promise<Ended> {
  // A session per call: a stalled request holds its session's flow-control window.
  const caller = m.connect();
  const stream = caller.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
  let head: http2.IncomingHttpHeaders = {};
  let data = '';
  let trailers: http2.IncomingHttpHeaders | null = null;
  let error: string | null = null;
  stream.on('error', (e: Error & { code?: string }) => (error = e.code ?? e.message));
  stream.on('response', (h) => (head = h));
  stream.setEncoding('utf8').on('data', (d: string) => (data += d));
  stream.on('trailers', (tr) => ((trailers = tr), onTrailers(stream)));
  if (end) stream.end(request);
  else stream.write(request);
  const stuck = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 10_000);
  return new Promise((resolve) => stream.on('close', () => (clearTimeout(stuck), resolve({ head, data, trailers, rstCode: stream.rstCode, error }))));
}

test.serial('a trailers-only answer, then a reset with an error code while the request is open: the caller gets the answer, and its call ends with NO_ERROR', async (t) => {
  const ended = await callWith('/svc/NotFound', Buffer.from('request, not ended'), false);
  t.is(ended.head['grpc-status'], '5');
  t.is(ended.head['grpc-message'], 'no such thing');
  t.is(ended.rstCode, http2.constants.NGHTTP2_NO_ERROR, `the caller's stream was reset (${ended.error})`);
  t.is(ended.error, null);
});

test.serial('a whole answer while the request is held back by an app that neither reads nor closes: the app\'s stream is cancelled and the call ends', async (t) => {
  // Far more than the HTTP/2 windows hold: the request stalls in both sidecars' relays.
  const ended = await callWith('/svc/Whole', Buffer.alloc(2 * 1024 * 1024), true);
  t.is(ended.data, 'answer');
  t.is(ended.trailers?.['grpc-status'], '0');
  t.is(ended.rstCode, http2.constants.NGHTTP2_NO_ERROR, 'the call ended by itself, not when the caller gave up');
  await waitFor("the app's stream closed", () => appStreams.get('/svc/Whole')?.closed || undefined, 3000);
  await waitFor('no request in flight at the app', async () => (await inFlight(appSidecar)) === 0 || undefined, 5000);
  await waitFor('no request in flight at web', async () => (await inFlight(web)) === 0 || undefined, 5000);
  t.pass();
});

test.serial('the caller resets with NO_ERROR once it has its whole answer, its request held back: nothing stays open', async (t) => {
  const ended = await callWith('/svc/ThenReset', Buffer.alloc(2 * 1024 * 1024), false, (s) => s.close(http2.constants.NGHTTP2_NO_ERROR));
  t.is(ended.trailers?.['grpc-status'], '0');
  await waitFor("the app's stream closed", () => appStreams.get('/svc/ThenReset')?.closed || undefined, 3000);
  await waitFor('no request in flight at the app', async () => (await inFlight(appSidecar)) === 0 || undefined, 5000);
  await waitFor('no request in flight at web', async () => (await inFlight(web)) === 0 || undefined, 5000);
  t.pass();
});
