// Small apps for mesh tests, with no mesh code in them: an HTTP echo, a gRPC service, a WebSocket echo and
// a TCP line echo, each on a real loopback port.

import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { WebSocketServer } from 'ws';

export interface App {
  readonly port: number;
  /** requests seen, newest last */
  readonly seen: { method: string; url: string; headers: http.IncomingHttpHeaders; host?: string }[];
  close(): Promise<void>;
}

export async function httpEcho(name: string): Promise<App> {
  const seen: App['seen'] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ app: name, method: req.method, url: req.url, host: req.headers.host, peer: req.headers['x-weft-peer-identity'] ?? null, body }));
    });
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => ws.on('message', (m) => ws.send(`${name} echo: ${m.toString()} (from ${req.headers['x-weft-peer-identity'] ?? 'nobody'})`)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () => new Promise((r) => (wss.close(), server.closeAllConnections(), server.close(() => r()))),
  };
}

/** Echoes each line back as "echo: <line>"; `seen` has an entry per connection. */
export async function tcpEcho(): Promise<App> {
  const seen: App['seen'] = [];
  const server = net.createServer((s) => {
    seen.push({ method: 'TCP', url: `connection ${seen.length + 1}`, headers: {} });
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
        s.write(`echo: ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => new Promise((r) => server.close(() => r())) };
}

const PROTO = fileURLToPath(new URL('../fixtures/prices.proto', import.meta.url));

export function pricesProto(): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })).prices as grpc.GrpcObject;
}

/** A grpc-js client of the Prices service at 127.0.0.1:`port`. */
export function pricesClient(port: number, options: grpc.ChannelOptions = {}): PricesClient {
  const Client = pricesProto().Prices as unknown as grpc.ServiceClientConstructor;
  return new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as unknown as PricesClient;
}
export type PricesClient = { Get: Function; Watch: Function; Collect: Function } & grpc.Client;

export async function grpcPrices(): Promise<App> {
  const proto = pricesProto();
  const server = new grpc.Server();
  const seen: App['seen'] = [];
  const caller = (call: { metadata: grpc.Metadata }) => String(call.metadata.get('x-weft-peer-identity')[0] ?? '');
  // Get: "flaky-…" is UNAVAILABLE the first time each is asked for, "down-…" every time; "exhausted-…" is
  // RESOURCE_EXHAUSTED every time. Watch: "stall-…" never ends its stream.
  const asked = new Set<string>();
  const unavailable = (sku: string) => {
    if (sku.startsWith('down-')) return true;
    if (!sku.startsWith('flaky-') || asked.has(sku)) return false;
    asked.add(sku);
    return true;
  };
  server.addService((proto.Prices as unknown as { service: grpc.ServiceDefinition }).service, {
    Get: (call: grpc.ServerUnaryCall<{ sku: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      seen.push({ method: 'POST', url: `/prices.Prices/Get?sku=${call.request.sku}`, headers: call.metadata.getMap() as http.IncomingHttpHeaders, host: call.getHost() });
      if (call.request.sku === 'slow') {
        setTimeout(() => cb(null, { sku: 'slow', cents: 1, caller: caller(call) }), 2000);
        return;
      }
      if (call.request.sku === 'missing') {
        cb({ code: grpc.status.NOT_FOUND, details: `no price for ${call.request.sku}` });
        return;
      }
      if (unavailable(call.request.sku)) {
        cb({ code: grpc.status.UNAVAILABLE, details: `${call.request.sku} is unavailable this time` });
        return;
      }
      if (call.request.sku.startsWith('exhausted-')) {
        cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: `no quota left for ${call.request.sku}` });
        return;
      }
      cb(null, { sku: call.request.sku, cents: 1299, caller: caller(call) });
    },
    Watch: (call: grpc.ServerWritableStream<{ sku: string; count: number }, unknown>) => {
      const { sku, count } = call.request;
      for (let i = 0; i < count; i++) call.write({ sku, cents: 100 + i, caller: caller(call) });
      if (!sku.startsWith('stall-')) {
        call.end();
        return;
      }
      // "stall-…" sends its messages and then never ends, until the call is cancelled.
      const url = `/prices.Prices/Watch?sku=${sku}`;
      seen.push({ method: 'POST', url, headers: call.metadata.getMap() as http.IncomingHttpHeaders });
      call.on('cancelled', () => seen.push({ method: 'POST', url: `${url}&cancelled`, headers: {} }));
    },
    Collect: (call: grpc.ServerReadableStream<{ sku: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const skus: string[] = [];
      call.on('data', (r: { sku: string }) => skus.push(r.sku));
      call.on('end', () => {
        seen.push({ method: 'POST', url: `/prices.Prices/Collect?skus=${skus.join(',')}`, headers: call.metadata.getMap() as http.IncomingHttpHeaders });
        if (skus.length > 0 && unavailable(skus[0]!)) cb({ code: grpc.status.UNAVAILABLE, details: `${skus[0]} is unavailable this time` });
        else cb(null, { sku: skus.join(','), cents: skus.length, caller: caller(call) });
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  // A call left open (a "stall-…" watch a failed test did not cancel) does not hold up the end for long.
  const close = () =>
    new Promise<void>((r) => {
      const force = setTimeout(() => (server.forceShutdown(), r()), 2000);
      server.tryShutdown(() => (clearTimeout(force), r()));
    });
  return { port, seen, close };
}
