// forwardUpgrade (sidecar/http/upgrade.ts) over loopback sockets: a client that leaves before the next hop
// answers takes the upstream connection with it, and a next hop that never answers is given up (then the
// listener answers 504).

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import type { H1Request } from '../../../sidecar/http/h1-message.ts';
import { forwardUpgrade } from '../../../sidecar/http/upgrade.ts';

/** A next hop that takes connections and never answers; `closed` counts the connections that went away. */
async function silentHop(t: import('ava').ExecutionContext) {
  const state = { accepted: 0, closed: 0 };
  const server = net.createServer((s) => {
    state.accepted++;
    s.on('error', () => {});
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
