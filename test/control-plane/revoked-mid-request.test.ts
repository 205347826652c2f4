// A certificate revoked or expired while its request's body is still arriving: the control plane checked it when the
// head came, but must not sign a renewal for it, nor register a sidecar on it, once the body is in.

import test from 'ava';
import https from 'node:https';
import { generateKeyPair } from '../../ca/keys.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { bootstrap, csrFor, type Svid } from '../helpers/stub-sidecar.ts';

interface Answer {
  readonly status: number;
  readonly reason: string | undefined;
  readonly body: string;
}

/**
 * POSTs `body` over mTLS with `svid` in two halves: the head and first half, then, once `between` has run, the rest.
 * HTTP/1.1 with a Content-Length, as sidecars speak to the control plane.
 */
function slowPost(cp: TestControlPlane, svid: Svid, path: string, body: string, between: () => Promise<void>): Promise<Answer> {
  const data = Buffer.from(body);
  const url = new URL(path, cp.conn.url);
  return new Promise<Answer>((resolve, reject) => {
    const req = https.request(url, {
      method: 'POST',
      cert: svid.chain,
      key: svid.key,
      ca: cp.conn.ca,
      // The control plane's identity is its URI SAN; node's hostname check does not read those (as client.ts says).
      checkServerIdentity: () => undefined,
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': String(data.length) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.headers['x-weft-reason'] as string | undefined, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const half = Math.floor(data.length / 2);
    req.write(data.subarray(0, half));
    // Long enough for the head to reach the handler and its certificate to be checked.
    setTimeout(() => {
      between().then(() => req.end(data.subarray(half)), reject);
    }, 300);
  });
}

async function revoke(cp: TestControlPlane, serial: string): Promise<void> {
  const op = cp.operator();
  try {
    await op.request('POST', '/v1/revocations', { serial });
  } finally {
    op.close();
  }
}

test('a certificate revoked while its renewal request is arriving gets no new certificate', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const issued = cp.journalLength();
  const answer = await slowPost(cp, svid, '/v1/identity/renew', JSON.stringify({ csr: await csrFor(generateKeyPair()) }), () => revoke(cp, svid.serial));
  t.is(answer.status, 403, answer.body);
  t.is(answer.reason, 'WEFT_CERT_REVOKED');
  t.is(cp.journalLength(), issued, 'nothing was signed for the revoked certificate');
});

test('a certificate that expires while its renewal request is arriving gets no new certificate', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const issued = cp.journalLength();
  const answer = await slowPost(cp, svid, '/v1/identity/renew', JSON.stringify({ csr: await csrFor(generateKeyPair()) }), async () => cp.advance(2 * 3600_000));
  t.is(answer.status, 403, answer.body);
  t.is(answer.reason, 'WEFT_CERT_EXPIRED');
  t.is(cp.journalLength(), issued, 'nothing was signed for the expired certificate');
});

test('a certificate revoked while its stream registration is arriving registers no sidecar', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const registration = JSON.stringify({ id: 'late-1', service: 'web', namespace: 'default', labels: {}, address: '127.0.0.1:7300' });
  // A refused registration is answered whole; an accepted one is a stream that stays open, so race it with a look.
  const answer = slowPost(cp, svid, '/v1/sidecars/stream', registration, () => revoke(cp, svid.serial));
  const registered = (async () => {
    const op = cp.operator();
    try {
      for (let i = 0; i < 30; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const status = await op.request<{ sidecars: { id: string }[] }>('GET', '/v1/status');
        if (status.sidecars.some((s) => s.id === 'late-1')) return 'registered';
      }
      return 'not registered';
    } finally {
      op.close();
    }
  })();
  const first = await Promise.race([answer.then((a) => `answered ${a.status} ${a.reason}`), registered]);
  t.is(first, 'answered 403 WEFT_CERT_REVOKED');
  t.is(await registered, 'not registered');
});
