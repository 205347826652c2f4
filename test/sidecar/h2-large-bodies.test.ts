// Large HTTP/2 bodies through both sidecars (an h2c app behind an `http2` service): each direction of a stream is
// relayed with backpressure (sidecar/http/stream-relay.ts), so a caller that reads slowly holds the answer back
// rather than stalling it for good, and a request past what is kept for a retry still reaches the app whole.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { startMesh, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

const YAML = meshYaml({ services: { web: '{port: 8080}', blobs: '{port: 8084, protocol: http2}' } });

let mesh: TestMesh;
let app: http2.Http2Server;
let web: SidecarProc;

test.before(async () => {
  // The app: answers a POST with its body's SHA-256 in a header and the body itself, then a trailer with its length.
  app = http2.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'x-sha256': createHash('sha256').update(body).digest('hex') });
      res.addTrailers({ 'x-length': String(body.length) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  mesh = await startMesh(YAML);
  await mesh.sidecar({ service: 'blobs', appPort: (app.address() as AddressInfo).port });
  web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['blobs'] });
});

test.after.always(async () => {
  await mesh?.stop();
  await new Promise((resolve) => app?.close(resolve));
});

test('8 MB each way over HTTP/2 through both sidecars, to a caller that stops reading for a while, arrives intact with its trailers', async (t) => {
  const sent = randomBytes(8 * 1024 * 1024);
  const session = http2.connect(`http://127.0.0.1:${web.ports.upstreams.blobs}`);
  t.teardown(() => session.destroy());
  const got = await new Promise<{ status: number; sha: string; body: Buffer; length: string | undefined }>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/blob', 'content-type': 'application/octet-stream' });
    let status = 0;
    let sha = '';
    let length: string | undefined;
    const chunks: Buffer[] = [];
    req.on('response', (h) => ((status = Number(h[':status'])), (sha = String(h['x-sha256']))));
    req.on('trailers', (tr) => (length = tr['x-length'] as string | undefined));
    // Far more than the HTTP/2 windows and the sockets' buffers hold: each relay must pause its source and resume on 'drain'.
    req.once('data', (c: Buffer) => {
      chunks.push(c);
      req.pause();
      setTimeout(() => req.on('data', (d: Buffer) => chunks.push(d)).resume(), 500);
    });
    req.on('end', () => resolve({ status, sha, body: Buffer.concat(chunks), length }));
    req.on('error', reject);
    req.end(sent);
  });
  t.is(got.status, 200);
  t.is(got.sha, createHash('sha256').update(sent).digest('hex'), 'the app got the request body byte for byte');
  t.is(got.body.length, sent.length);
  t.true(got.body.equals(sent), 'the answer came back byte for byte');
  t.is(got.length, String(sent.length), "the answer's trailers came after its body");
});
