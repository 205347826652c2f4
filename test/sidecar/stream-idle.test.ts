// The Mesh's streamIdleTimeout (1 s here) through real sidecars: a caller's sidecar, the app's sidecar, apps that
// hang, and real clients (raw HTTP/1 sockets, grpc-js, ws). A request or stream on which no byte moves for the
// timeout is ended for the caller (408, or UNAVAILABLE for gRPC) and at the app (its connection or call closed), and
// no connection is left behind; requests that keep bytes moving, and quiet WebSockets, are left alone (each such
// check next to a quiet request that is cut, so it cannot pass for want of a timeout).

import test from 'ava';
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import WebSocket, { WebSocketServer } from 'ws';
import { pricesClient, pricesProto, type PricesClient } from '../helpers/apps.ts';
import { run as runTool } from '../helpers/ca.ts';
import { rawClient, type RawClient } from '../helpers/h1-server.ts';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

const YAML = meshYaml({ mesh: 'streamIdleTimeout: 1s', services: { web: '{port: 8080}', catalog: '{port: 8081}', prices: '{port: 8082, protocol: grpc}' } });

/** What the apps saw, in order: "request /x", "closed /x" (its connection), "call x", "cancelled x". */
const events: string[] = [];
const saw = (event: string) => waitFor(`the app to see "${event}"`, () => events.includes(event) || undefined, 8000);

/** HTTP app: /hang… never answers; anything else is answered, once its body has all come, with its length. WebSocket echo. */
async function catalogApp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = req.url!;
    events.push(`request ${url}`);
    req.socket.once('close', () => events.push(`closed ${url}`));
    if (url.startsWith('/hang')) return;
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length)).on('end', () => res.end(`got ${n} bytes`));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo: ${m.toString()}`)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => (wss.close(), server.closeAllConnections(), server.close(() => r()))) };
}

/** gRPC app: Get("hang…") never answers; Watch("stall…") sends one price, then nothing until cancelled. */
async function pricesApp(): Promise<{ port: number; close(): void }> {
  const server = new grpc.Server();
  const watchCalls = (sku: string, call: { on(event: 'cancelled', listener: () => void): unknown }) => {
    events.push(`call ${sku}`);
    call.on('cancelled', () => events.push(`cancelled ${sku}`));
  };
  server.addService((pricesProto().Prices as unknown as { service: grpc.ServiceDefinition }).service, {
    Get: (call: grpc.ServerUnaryCall<{ sku: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      watchCalls(call.request.sku, call);
      if (!call.request.sku.startsWith('hang')) cb(null, { sku: call.request.sku, cents: 1 });
    },
    Watch: (call: grpc.ServerWritableStream<{ sku: string }, unknown>) => {
      watchCalls(call.request.sku, call);
      call.write({ sku: call.request.sku, cents: 100 });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { port, close: () => server.forceShutdown() };
}

let mesh: TestMesh;
let web: SidecarProc;
let apps: { catalog: Awaited<ReturnType<typeof catalogApp>>; prices: Awaited<ReturnType<typeof pricesApp>> };
let client: PricesClient;

test.before(async () => {
  apps = { catalog: await catalogApp(), prices: await pricesApp() };
  mesh = await startMesh(YAML);
  await Promise.all([mesh.sidecar({ service: 'catalog', appPort: apps.catalog.port }), mesh.sidecar({ service: 'prices', appPort: apps.prices.port })]);
  web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['prices', 'catalog'] });
  client = pricesClient(web.ports.upstreams.prices!, { 'grpc.enable_retries': 0 });
});

test.after.always(async () => {
  client?.close();
  await mesh?.stop();
  apps?.prices.close();
  await apps?.catalog.close();
});

const request = (path: string) => `GET ${path} HTTP/1.1\r\nhost: catalog\r\n\r\n`;

/** A raw HTTP/1 connection to web's outbound port. */
const caller = (t: import('ava').ExecutionContext): Promise<RawClient> => rawClient(t, web.ports.outbound);

const is408 = (text: string) => /^HTTP\/1\.1 408 Request Timeout\r\n/.test(text) && /\r\nx-weft-reason: stream-idle-timeout\r\n/i.test(text);

test('HTTP/1: a request the app never answers gets 408 after the timeout; the caller\'s connection and the app\'s are closed', async (t) => {
  const c = await caller(t);
  const started = Date.now();
  c.send(request('/hang-one'));
  const text = await c.untilClosed(8000);
  const ms = Date.now() - started;
  t.true(is408(text), text);
  t.regex(text, /no byte of this request or its answer moved for 1000 ms \(the mesh's streamIdleTimeout\)/);
  t.true(ms >= 1000 && ms < 5000, `took ${ms} ms`);
  await saw('closed /hang-one');
});

test('HTTP/1: pipelined requests behind a hung one from a caller that has left: the sidecar closes the connection (no CLOSE-WAIT) and the app\'s', async (t) => {
  // The sidecar reads 16 requests ahead and then stops reading, so the caller's FIN is never seen: without the
  // timeout the sidecar held this connection in CLOSE-WAIT, and its connection to the app, until the app answered.
  const c = await caller(t);
  c.send(Array.from({ length: 40 }, (_, i) => request(`/hang-pipelined-${i}`)).join(''));
  await saw('request /hang-pipelined-0');
  c.socket.end();
  const text = await c.untilClosed(8000);
  t.true(is408(text), text);
  await saw('closed /hang-pipelined-0');
  t.false(events.includes('request /hang-pipelined-1'), 'the requests behind the hung one went with the connection');
  const ss = await runTool('ss', ['-Htn', 'state', 'close-wait', `( sport = :${web.ports.outbound} )`]);
  t.is(ss.code, 0, ss.stderr);
  t.is(ss.stdout.trim(), '', 'a connection of the outbound port is still in CLOSE-WAIT');
});

test('HTTP/1: a body that keeps coming for longer than the timeout is not cut, while a quiet request next to it is', async (t) => {
  const quiet = await caller(t);
  quiet.send(request('/hang-beside-upload'));
  const upload = await caller(t);
  upload.send('POST /upload HTTP/1.1\r\nhost: catalog\r\ntransfer-encoding: chunked\r\n\r\n');
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 300));
    upload.send('1\r\na\r\n');
  }
  upload.send('0\r\n\r\n');
  const text = await upload.until((s) => s.endsWith('got 10 bytes'), 5000);
  t.regex(text, /^HTTP\/1\.1 200 OK\r\n/);
  t.true(is408(await quiet.untilClosed(5000)), 'the quiet request was not cut: is the timeout on?');
});

test('a WebSocket quiet for longer than the timeout stays open (tunnels are not under it), while a quiet request is cut', async (t) => {
  const ws = new WebSocket(`ws://127.0.0.1:${web.ports.upstreams.catalog}/chat`);
  ws.on('error', () => {});
  await once(ws, 'open');
  const quiet = await caller(t);
  quiet.send(request('/hang-beside-websocket'));
  t.true(is408(await quiet.untilClosed(8000)), 'the quiet request was not cut: is the timeout on?');
  await new Promise((r) => setTimeout(r, 1500)); // the WebSocket has been quiet for 2.5 s or more now
  t.is(ws.readyState, WebSocket.OPEN);
  ws.send('still there?');
  const [msg] = await once(ws, 'message');
  t.is(msg.toString(), 'echo: still there?');
  ws.close();
});

function grpcOutcome<T>(start: (done: (status: grpc.StatusObject) => void, got: T[]) => void): Promise<{ status: grpc.StatusObject; got: T[] }> {
  const got: T[] = [];
  return new Promise((resolve) => start((status) => resolve({ status, got }), got));
}

test('gRPC: a call the app never answers ends UNAVAILABLE with the reason, and the app\'s call is cancelled', async (t) => {
  const { status } = await grpcOutcome<unknown>((done) => {
    client.Get({ sku: 'hang-unary' }, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null) => done(err ?? { code: grpc.status.OK, details: '', metadata: new grpc.Metadata() }));
  });
  t.is(status.code, grpc.status.UNAVAILABLE, status.details);
  t.is(status.details, "weft: no byte of this request or its answer moved for 1000 ms (the mesh's streamIdleTimeout)");
  t.is(status.metadata.get('x-weft-reason')[0], 'stream-idle-timeout');
  await saw('cancelled hang-unary');
});

test('gRPC: a server stream gone quiet is cut off after the messages that came, UNAVAILABLE in its trailers (as Envoy, quiet streams are not exempt)', async (t) => {
  const { status, got } = await grpcOutcome<{ cents: number }>((done, got) => {
    const stream = client.Watch({ sku: 'stall-watch' }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }) as grpc.ClientReadableStream<{ cents: number }>;
    stream.on('data', (p) => got.push(p));
    stream.on('error', () => {});
    stream.on('status', done);
  });
  t.deepEqual(got.map((p) => p.cents), [100]);
  t.is(status.code, grpc.status.UNAVAILABLE, status.details);
  t.is(status.metadata.get('x-weft-reason')[0], 'stream-idle-timeout');
  await saw('cancelled stall-watch');
});
