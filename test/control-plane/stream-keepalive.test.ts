// A sidecar's snapshot stream gets a keepalive only while nothing else is on its way (control-plane/api/sidecars.ts
// with push/paced-writer.ts): a sidecar that has stopped reading must not have keepalives pile up behind a
// snapshot the control plane cannot send, one per period for as long as it stays stuck. Over a real HTTP/2 mTLS
// connection whose client advertises a 256-byte stream window and does not read: the first snapshot then waits on
// HTTP/2 flow control, with nothing in kernel buffers to hide it (over HTTP/1.1, megabytes would have to pile up
// in loopback's socket buffers first).

import test from 'ava';
import http2 from 'node:http2';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane } from '../helpers/control-plane.ts';
import { bootstrap } from '../helpers/stub-sidecar.ts';

const KEEPALIVE_MS = 100;
const STUCK_MS = 2500;

test('a stream whose sidecar stops reading gets no keepalives queued behind a snapshot that cannot go', async (t) => {
  const cp = await startControlPlane({ keepaliveMs: KEEPALIVE_MS });
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const session = http2.connect(cp.conn.url, { ca: cp.conn.ca, cert: svid.chain, key: svid.key, checkServerIdentity: () => undefined, settings: { initialWindowSize: 256 } });
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const stream = session.request({ ':method': 'POST', ':path': '/v1/sidecars/stream', 'content-type': 'application/json' });
  stream.on('error', () => {});
  stream.end(JSON.stringify({ id: 'web-1', service: 'web', namespace: 'default', labels: {}, address: '127.0.0.1:1' }));
  const [head] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  t.is(Number(head[':status']), 200);
  t.is(head['weft-keepalive-ms'], String(KEEPALIVE_MS));

  // Read nothing yet: node:http2 starts reading a stream from its session only once it flows, so the first
  // snapshot (kilobytes) waits on the window from the start.
  await sleep(STUCK_MS);

  const reading = Date.now();
  let text = '';
  stream.setEncoding('utf8').on('data', (d: string) => (text += d));
  const until = async (what: string, ok: () => boolean) => {
    for (let waited = 0; !ok(); waited += 20) {
      if (waited > 10_000) throw new Error(`no ${what} within 10 s; got:\n${text.slice(-2000)}`);
      await sleep(20);
    }
  };
  // Reading now: the snapshot arrives, then keepalives at their period.
  await until('the snapshot held back', () => text.includes('event: snapshot'));
  await sleep(3 * KEEPALIVE_MS);
  const readFor = Date.now() - reading;
  const after = text.slice(text.indexOf('event: snapshot'));
  const keepalives = after.split(': keepalive\n\n').length - 1;
  // Queued for the whole stuck period, there would be STUCK_MS / KEEPALIVE_MS of them (25) right behind the
  // snapshot; sent only when idle, one per period since the stream was read, and one in flight.
  const bound = Math.ceil(readFor / KEEPALIVE_MS) + 1;
  t.true(keepalives <= bound, `${keepalives} keepalives after the stall (at most ${bound} expected)`);
  t.true(keepalives >= 1, 'keepalives come once the stream is idle');
});
