// The control plane writes a sidecar's stream in 16 KiB pieces (control-plane/push/paced-writer.ts), over a real
// TLS response here: what arrives must be exactly what was written, in order, with characters of several bytes
// (and surrogate pairs) across piece boundaries, and an end asked for behind a large message must wait for it.

import test, { type ExecutionContext } from 'ava';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { PacedWriter, PIECE_CHARS } from '../../control-plane/push/paced-writer.ts';
import { makeCa, makeCsr, TD } from '../helpers/ca.ts';

const https = process.getBuiltinModule('node:https');

/** Serves one response through `write`, and resolves with the body the client received and the write sizes seen. */
async function roundTrip(t: ExecutionContext, write: (out: PacedWriter) => void): Promise<{ body: string; pieces: number[] }> {
  const { ca, bundle } = await makeCa();
  const keys = generateKeyPair();
  const svid = ca.sign((await makeCsr({ keys })).pem, `spiffe://${TD}/ns/weft-system/sa/control-plane`);
  const pieces: number[] = [];
  const server = https.createServer({ key: privateKeyToPem(keys.privateKey), cert: svid.chainPem }, (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    write(new PacedWriter({ write: (chunk, done) => (pieces.push(chunk.length), res.write(chunk, done)), end: () => res.end() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => (server.closeAllConnections(), server.close()));
  const body = await new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: bundle.toPem(), checkServerIdentity: () => undefined }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text)).on('error', reject);
    }).on('error', reject);
  });
  return { body, pieces };
}

test('a large message arrives whole, in pieces of at most 16 KiB, with the messages around it in order', async (t) => {
  // 'é' is two bytes in UTF-8 and '😀' a surrogate pair: the boundaries fall inside both.
  const big = `data: ${'é'.repeat(PIECE_CHARS - 7)}😀${'x'.repeat(3 * PIECE_CHARS)}😀\n\n`;
  const { body, pieces } = await roundTrip(t, (out) => {
    t.true(out.write('event: registered\n\n'), 'a small write when idle goes at once');
    t.false(out.write(big), 'a large one is queued: the caller waits for onIdle');
    out.write(': keepalive\n\n');
    let resumed = 0;
    out.onIdle(() => {
      if (resumed++ === 0) out.end();
    });
  });
  t.is(body, `event: registered\n\n${big}: keepalive\n\n`);
  t.true(pieces.length >= 6, `${pieces.length} writes`);
  t.true(pieces.every((n) => n <= PIECE_CHARS), String(pieces));
});

test('onIdle is told only after a write that returned false, once each time', async (t) => {
  let told = 0;
  await roundTrip(t, (out) => {
    out.onIdle(() => {
      told++;
      if (told === 1) {
        // A small write when idle goes at once and owes nobody a call.
        t.true(out.write('event: small\n\n'));
        setTimeout(() => out.end(), 100);
      }
    });
    t.true(out.write('event: first\n\n'));
    t.false(out.write('x'.repeat(3 * PIECE_CHARS)));
  });
  t.is(told, 1);
});

test('end() behind queued pieces ends the response after them, and nothing is written after it', async (t) => {
  const big = `data: ${'y'.repeat(5 * PIECE_CHARS)}\n\n`;
  const { body } = await roundTrip(t, (out) => {
    out.write(big);
    out.write('event: error\ndata: {}\n\n');
    out.end();
    t.false(out.write('event: late\n\n'));
  });
  t.is(body, `${big}event: error\ndata: {}\n\n`);
});
