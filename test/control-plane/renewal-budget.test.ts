// Renewal limits (control-plane/api/renewal-budget.ts): a certificate renewed too often, or an address renewing
// too much, is told to wait (429, Retry-After) before anything is signed; other certificates are unaffected.

import test from 'ava';
import { isWeftError, type WeftError } from '../../errors.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { PER_ADDRESS, PER_CERTIFICATE } from '../../control-plane/api/renewal-budget.ts';
import { startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { bootstrap, csrFor, type Svid } from '../helpers/stub-sidecar.ts';



/** Renews over mTLS with `svid`; the new certificate comes back as a Svid that can renew in turn. */
async function renew(client: ControlPlaneClient): Promise<Svid> {
  const keys = generateKeyPair();
  const r = await client.request<{ chain: string; identity: string; serial: string; notAfter: string }>('POST', '/v1/identity/renew', { csr: await csrFor(keys) });
  return { chain: r.chain, key: privateKeyToPem(keys.privateKey), identity: r.identity, serial: r.serial, notAfter: r.notAfter };
}

const mtls = (cp: TestControlPlane, svid: Svid) => new ControlPlaneClient({ ...cp.conn, cert: svid.chain, key: svid.key });

test('a certificate renewed past its budget is told to wait (429, Retry-After); another replica of the identity is not', async (t) => {
  const cp = await startControlPlane({ frozenClock: true });
  t.teardown(() => cp.cp.stop());
  const a = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const b = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const clientA = mtls(cp, a);
  const clientB = mtls(cp, b);
  t.teardown(() => (clientA.close(), clientB.close()));

  for (let i = 0; i < PER_CERTIFICATE.burst; i++) await renew(clientA);
  const issued = cp.journalLength();
  const limited = (await t.throwsAsync(renew(clientA))) as WeftError;
  t.true(isWeftError(limited, 'WEFT_API_RATE_LIMITED'), limited.message);
  t.regex(limited.message, new RegExp(`^certificate ${a.serial} for spiffe://shop\\.example/ns/default/sa/web has asked for renewal too often \\(5 at once, then one every 30 s\\); try again in \\d+ s$`));
  // The Retry-After header (the client reads it into details): the next token is 30 s away.
  t.is(limited.details['retryAfterSeconds'], 30);
  t.is(cp.journalLength(), issued, 'nothing was signed for the refused renewal');

  // Same identity, same address, its own certificate: renews as usual, and so does a certificate A got.
  const renewedB = await renew(clientB);
  t.is(renewedB.identity, a.identity);
  // Once the wait is over, A has one more renewal, and then waits again.
  cp.advance(30_000);
  const fromA = mtls(cp, await renew(clientA));
  t.teardown(() => fromA.close());
  t.truthy(await renew(fromA), 'a certificate A got has its own budget');
  const again = (await t.throwsAsync(renew(clientA))) as WeftError;
  t.true(isWeftError(again, 'WEFT_API_RATE_LIMITED'), again.message);
});

test('an address renewing past its budget is told to wait, before any signature; the allowance comes back', async (t) => {
  const cp = await startControlPlane({ frozenClock: true });
  t.teardown(() => cp.cp.stop());
  const fresh = await bootstrap(cp.conn, await cp.tokenFor('catalog'));
  // A chain of renewals from one address, each certificate used within its own budget: only the address's
  // budget can stop it.
  const queue = [await bootstrap(cp.conn, await cp.tokenFor('web'))];
  const clients: ControlPlaneClient[] = [];
  t.teardown(() => clients.forEach((c) => c.close()));
  let renewed = 0;
  let limited: WeftError | undefined;
  while (!limited && renewed < PER_ADDRESS.burst * 3) {
    const client = mtls(cp, queue.shift()!);
    clients.push(client);
    for (let i = 0; i < PER_CERTIFICATE.burst && !limited; i++) {
      try {
        queue.push(await renew(client));
        renewed++;
      } catch (err) {
        limited = err as WeftError;
      }
    }
    client.close();
  }
  t.true(isWeftError(limited, 'WEFT_API_RATE_LIMITED'), limited?.message ?? `${renewed} renewals and never told to wait`);
  t.is(renewed, PER_ADDRESS.burst);
  t.regex(limited!.message, /^too many certificate renewals from \S+ \(200 at once, then 20 a second\); try again in 1 s$/);
  t.is(limited!.details['retryAfterSeconds'], 1);
  // A certificate that never renewed waits too: the limit is the address's.
  const freshClient = mtls(cp, fresh);
  clients.push(freshClient);
  const issued = cp.journalLength();
  const waiting = (await t.throwsAsync(renew(freshClient))) as WeftError;
  t.true(isWeftError(waiting, 'WEFT_API_RATE_LIMITED'), waiting.message);
  t.is(cp.journalLength(), issued);
  cp.advance(1000);
  t.is((await renew(freshClient)).identity, 'spiffe://shop.example/ns/default/sa/catalog');
});
