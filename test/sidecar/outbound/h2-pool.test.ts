// H2Pool (sidecar/outbound/h2-pool.ts) against real HTTP/2 servers on loopback: only a draining peer's GOAWAY
// turns new calls away from its endpoint; a session the peer closed for being idle just ends, and the next call
// opens another (before, any GOAWAY did, and an endpoint closed for idleness was passed over for good).

import test from 'ava';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { goAway } from '../../../sidecar/http/servers.ts';
import { H2Pool } from '../../../sidecar/outbound/h2-pool.ts';

async function peer(t: import('ava').ExecutionContext, onSession: (s: http2.ServerHttp2Session) => void) {
  const server = http2.createServer();
  server.on('stream', (s) => s.respond({ ':status': 200 }, { endStream: true }));
  server.on('session', onSession);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function call(pool: H2Pool): Promise<number> {
  const req = pool.request({ ':path': '/' });
  const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  req.resume();
  await once(req, 'close');
  return Number(headers[':status']);
}

for (const [how, closeSession, draining] of [
  ['closed for being idle (GOAWAY, no data)', (s: http2.ServerHttp2Session) => s.close(), false],
  ['a draining peer (GOAWAY saying so)', (s: http2.ServerHttp2Session) => goAway(s), true],
] as const) {
  test(`a session ${how}: draining ${draining}`, async (t) => {
    const sessions: http2.ServerHttp2Session[] = [];
    const url = await peer(t, (s) => void sessions.push(s));
    const clients: http2.ClientHttp2Session[] = [];
    const pool = new H2Pool({ address: url, connections: 4, connect: () => (clients.push(http2.connect(url)), clients.at(-1)!) });
    t.teardown(() => pool.close());
    t.is(await call(pool), 200);
    const gone = once(clients[0]!, 'goaway');
    closeSession(sessions[0]!);
    await gone;
    await new Promise((resolve) => setImmediate(resolve)); // the pool's own goaway listener has run
    t.is(pool.draining, draining);
    // Either way the next call is made, on a new session.
    t.is(await call(pool), 200);
    t.is(sessions.length, 2);
  });
}
