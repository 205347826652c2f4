// A control plane whose snapshot stream misbehaves, against a real sidecar process: the sidecar gives the stream
// up, keeps serving its last good config, and reconnects with backoff.

import test from 'ava';
import { MESH_YAML } from '../helpers/control-plane.ts';
import { fullEvent, readyPorts, startFakeControlPlane, webSnapshot, type FakeStream } from '../helpers/fake-control-plane.ts';
import { waitFor } from '../helpers/mesh.ts';

/** Writes `total` characters of one SSE data line that never ends, as fast as the sidecar reads them. */
async function endlessLine(s: FakeStream, total: number): Promise<void> {
  s.res.write('event: snapshot\ndata: ');
  const piece = 'x'.repeat(1 << 20);
  for (let sent = 0; sent < total && !s.res.destroyed; sent += piece.length) {
    if (s.res.write(piece)) continue;
    await new Promise<void>((resolve) => {
      const done = () => (s.res.off('drain', done), s.res.off('close', done), resolve());
      s.res.on('drain', done).on('close', done);
    });
  }
}

test('an event that never ends (a line without a newline) is cut off at the limit, and the sidecar serves on', async (t) => {
  const fake = await startFakeControlPlane(t, {
    onStream: (s, n) => {
      s.open(60_000); // keepalives far apart: the watchdog is not what ends this stream
      s.res.write(fullEvent(100, webSnapshot(fake.ca)));
      if (n === 1) setTimeout(() => void endlessLine(s, 80 << 20), 300);
      else s.res.write(fullEvent(101, webSnapshot(fake.ca, MESH_YAML.replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'))));
    },
  });
  const sc = fake.sidecar();
  const ports = await waitFor('the sidecar to be ready', () => readyPorts(sc), 30_000);
  const line = await waitFor('the sidecar to give the stream up', () => sc.logs().split('\n').find((l) => l.includes('control plane stream closed by this side')), 30_000);
  t.regex(line, /an event from the control plane passed 64 MiB without ending/);
  t.is((await fetch(`http://127.0.0.1:${ports.admin}/ready`)).status, 200, 'it keeps serving');
  // The next stream is heard.
  await waitFor('version 101 from the next stream', async () => (JSON.parse(await (await fetch(`http://127.0.0.1:${ports.admin}/config`)).text()) as { version: number }).version === 101 || undefined, 20_000);
  t.pass();
});

test('a stream refused with an answer that stalls mid-body is given up after the call timeout, and retried', async (t) => {
  const fake = await startFakeControlPlane(t, {
    onStream: (s, n) => {
      if (n === 1) {
        s.res.writeHead(503, { 'content-type': 'application/json', 'content-length': '200' });
        s.res.write('{"error":{"code":"WEFT_API_UN'); // and nothing more: the host froze mid-answer
        return;
      }
      s.open();
      s.res.write(fullEvent(100, webSnapshot(fake.ca)));
    },
  });
  const sc = fake.sidecar();
  // The call timeout is 30 s; then a backoff of at most 1 s.
  await waitFor('the sidecar to be ready on the second stream', () => readyPorts(sc), 45_000);
  t.is(fake.streams.length, 2);
});

test('a control plane that accepts the stream and drops it at once, again and again, is retried with a growing backoff', async (t) => {
  const fake = await startFakeControlPlane(t, {
    onStream: (s) => {
      s.open();
      s.res.end();
    },
  });
  const sc = fake.sidecar();
  await waitFor('the first stream', () => fake.streams.length >= 1 || undefined, 30_000);
  const first = Date.now();
  await new Promise((r) => setTimeout(r, 8000));
  // Waits of 1, 2 and 4 s (each jittered down to half) fit at most five tries in 8 s; a backoff that starts
  // over on every stream that opens tries every 0.5-1 s, eight or more.
  t.true(fake.streams.length <= 5, `${fake.streams.length} streams in ${Date.now() - first} ms: ${sc.logs().split('\n').filter((l) => l.includes('reconnecting')).map((l) => /"inMs":(\d+)/.exec(l)?.[1]).join(', ')}`);
});
