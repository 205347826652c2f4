// forwardUpgrade (sidecar/http/upgrade.ts) over loopback sockets: a client that leaves before the next hop
// answers takes the upstream connection with it, and a next hop that never answers is given up (then the
// listener answers 504).

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import type { H1Request } from '../../../sidecar/http/h1-message.ts';
import { forwardUpgrade } from '../../../sidecar/http/upgrade.ts';

/**
 * A next hop that takes connections and never answers, or gives each request head `answer` and keeps the connection
 * open (as a node:http app with no upgrade handler refuses one: keep-alive); `closed` counts the connections that went away.
 */
async function silentHop(t: import('ava').ExecutionContext, answer?: string) {
  const state = { accepted: 0, closed: 0 };
  const server = net.createServer((s) => {
    state.accepted++;
    s.on('error', () => {});
    if (answer) s.once('data', () => s.write(answer));
    s.resume();
    s.on('close', () => state.closed++);
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => sockets.add(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => (sockets.forEach((s) => s.destroy()), server.close()));
  const port = (server.address() as net.AddressInfo).port;
  const connect = async () => {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    return s;
  };
  return { state, connect };
}

/** A connected pair: `client` as the listener holds it, `caller` as the caller's end. */
async function pair(t: import('ava').ExecutionContext) {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const caller = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [client] = (await once(server, 'connection')) as [net.Socket];
  client.on('error', () => {});
  caller.on('error', () => {});
  t.teardown(() => (caller.destroy(), client.destroy(), server.close()));
  return { client, caller };
}

const req = { method: 'GET', url: '/ws', headers: { upgrade: 'websocket' } } as unknown as H1Request;

test('a client that leaves before the answer takes the upstream connection with it', async (t) => {
  const hop = await silentHop(t);
  const { client, caller } = await pair(t);
  const forwarded = forwardUpgrade(req, client, Buffer.alloc(0), { host: 'catalog' }, hop.connect, 5000);
  await new Promise((r) => setTimeout(r, 100));
  t.is(hop.state.accepted, 1);
  caller.destroy();
  const status = await forwarded.catch((err: Error) => err);
  t.true(status === 0 || status instanceof Error, String(status));
  for (let i = 0; i < 20 && hop.state.closed === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(hop.state.closed, 1, 'the upstream connection is still open');
});

test('a next hop that never answers is given up after the answer time, its connection closed', async (t) => {
  const hop = await silentHop(t);
  const { client } = await pair(t);
  const started = Date.now();
  const err = await t.throwsAsync(forwardUpgrade(req, client, Buffer.alloc(0), { host: 'catalog' }, hop.connect, 300));
  t.is((err as Error & { code?: string }).code, 'WEFT_UPGRADE_TIMEOUT');
  t.is(err!.message, 'no answer to the upgrade within 0.3 s');
  t.true(Date.now() - started >= 280);
  for (let i = 0; i < 20 && hop.state.closed === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(hop.state.closed, 1);
});

test('an upgrade the next hop refuses, keeping its connection alive: the answer is relayed whole, saying close, and both connections close', async (t) => {
  const body = '{"error":"no websockets here"}';
  const hop = await silentHop(t, `HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n${body}`);
  const { client, caller } = await pair(t);
  let got = '';
  caller.setEncoding('latin1').on('data', (d: string) => (got += d));
  const callerClosed = new Promise((r) => caller.once('close', r));
  t.is(await forwardUpgrade(req, client, Buffer.from('early frame'), { host: 'catalog' }, hop.connect, 5000), 403);
  // Nothing would read a next request sent on this connection: it must not be left open as keep-alive.
  await Promise.race([callerClosed, new Promise((r) => setTimeout(r, 2000))]);
  t.true(caller.closed || caller.readableEnded, `the caller's connection is still open after ${JSON.stringify(got)}`);
  t.true(got.startsWith('HTTP/1.1 403 Forbidden\r\n'), got);
  t.true(got.endsWith(`\r\n\r\n${body}`), got);
  t.regex(got, /\r\nconnection: close\r\n/i);
  t.notRegex(got, /keep-alive/i);
  for (let i = 0; i < 20 && hop.state.closed === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.is(hop.state.closed, 1, 'the connection to the next hop is still open');
});
