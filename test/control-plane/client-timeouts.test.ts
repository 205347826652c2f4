// The control-plane client's time limits, against a stand-in control plane that holds the real control plane's
// identity (a certificate for its SPIFFE ID from the test CA) and misbehaves on purpose: a call whose answer
// stalls after its head must still fail within the call timeout, while the stream, once its head is in, is
// watched by its keepalives instead and may stay quiet between them for longer than a call may. And the API's
// own limit on a request body that never arrives whole (node's requestTimeout is off for the full-duplex stream).

import test, { type ExecutionContext } from 'ava';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { readBody, sendError, sendJson } from '../../control-plane/api/http.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { isWeftError } from '../../errors.ts';
import { makeCa, makeCsr, TD } from '../helpers/ca.ts';
import { within } from '../helpers/h1-origins.ts';

const https = process.getBuiltinModule('node:https');

const CP_ID = `spiffe://${TD}/ns/weft-system/sa/control-plane`;

/** A TLS server holding the control plane's identity, answering every request with `answer`. */
async function standIn(t: ExecutionContext, answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<ControlPlaneClient> {
  const { ca, bundle } = await makeCa();
  const keys = generateKeyPair();
  const svid = ca.sign((await makeCsr({ keys })).pem, CP_ID);
  const server = https.createServer({ key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, minVersion: 'TLSv1.3' }, answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const client = new ControlPlaneClient({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, ca: bundle.toPem(), serverIdentity: CP_ID, callTimeoutMs: 1000 });
  t.teardown(() => client.close());
  return client;
}

test('a call whose answer stalls after its head fails as unreachable within the call timeout', async (t) => {
  const client = await standIn(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
    res.write('{"version":'); // and nothing more: the host froze mid-answer
  });
  const started = Date.now();
  const err = await t.throwsAsync(within(10_000, client.request('GET', '/v1/status'), 'the stalled call to fail'));
  t.true(isWeftError(err) && err.code === 'WEFT_CP_UNREACHABLE', String(err));
  t.regex(err!.message, /no answer in 1 s/);
  t.true(Date.now() - started < 5000, `failed after ${Date.now() - started} ms`);
});

test('a call whose answer trickles in faster than the timeout is not cut', async (t) => {
  const client = await standIn(t, (_req, res) => {
    const body = JSON.stringify({ ok: true, pad: 'x'.repeat(20) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    let i = 0;
    // 2.5 s in all, but never 1 s without a byte: the limit is on silence, not on the whole answer.
    const timer = setInterval(() => {
      res.write(body.slice(i, i + 4));
      i += 4;
      if (i >= body.length) (clearInterval(timer), res.end());
    }, 300);
  });
  t.deepEqual(await within(10_000, client.request<{ ok: boolean }>('GET', '/v1/status'), 'the slow answer'), { ok: true, pad: 'x'.repeat(20) });
});

test('the stream, once its head is in, outlives the call timeout while keepalives come', async (t) => {
  let opened = 0;
  const client = await standIn(t, (req, res) => {
    opened++;
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'weft-keepalive-ms': '1500' });
    res.write(': hello\n\n');
    const timer = setInterval(() => res.write(': keepalive\n\n'), 1500);
    res.on('close', () => clearInterval(timer));
  });
  const stream = await client.stream('/v1/sidecars/stream', { service: 'web' }, () => {});
  t.teardown(() => stream.close());
  // 3.5 s, 1.5 s at a time without a byte: longer than a call may wait, well within three keepalives.
  const outcome = await Promise.race([stream.closed.then((reason) => `closed: ${reason}`), new Promise((resolve) => setTimeout(resolve, 3500, 'open'))]);
  t.is(outcome, 'open');
  t.is(opened, 1);
});

test('the API answers a request body that does not arrive whole in time with 408, and closes the connection', async (t) => {
  const http = process.getBuiltinModule('node:http');
  const net = process.getBuiltinModule('node:net');
  const server = http.createServer((req, res) => {
    readBody(req as never, 1024, 400).then(
      () => sendJson(res as never, 200, { ok: true }),
      (err: unknown) => sendError(res as never, err),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => (server.closeAllConnections(), server.close()));
  const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  // Half of a declared 20-byte body, then nothing.
  socket.write('POST /v1/renew HTTP/1.1\r\nhost: cp\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{"csr": "');
  let answer = '';
  socket.setEncoding('latin1').on('data', (d: string) => (answer += d));
  await within(5000, new Promise((resolve) => socket.once('end', resolve)), 'the server to answer and close');
  t.regex(answer, /^HTTP\/1\.1 408 /);
  t.regex(answer, /\r\nx-weft-reason: WEFT_API_TIMEOUT\r\n/i);
  t.regex(answer, /\r\nconnection: close\r\n/i);
  t.regex(answer, /request body did not arrive whole within 0\.4 s/);
});
