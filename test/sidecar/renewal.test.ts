// Certificate renewal when the control plane says wait (429): the sidecar keeps its certificate, retries on its
// backoff or after the Retry-After if that is longer, shows the refusal on /certs, and renews once allowed.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { WeftError } from '../../errors.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { PER_CERTIFICATE } from '../../control-plane/api/renewal-budget.ts';
import { backoffMs, retryDelayMs } from '../../sidecar/identity/svid-source.ts';
import { httpEcho } from '../helpers/apps.ts';
import { startMesh, waitFor } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';
import { bootstrap, csrFor, type Svid } from '../helpers/stub-sidecar.ts';

const limited = (seconds: number) => new WeftError('WEFT_API_RATE_LIMITED', 'wait', { retryAfterSeconds: seconds });

test('the wait before another try is the backoff, or the Retry-After when longer (at most 5 minutes)', (t) => {
  const cases: [failures: number, err: unknown, ms: number][] = [
    [1, new Error('socket hang up'), 1000],
    [3, new WeftError('WEFT_CP_UNREACHABLE', 'down'), 4000],
    [1, limited(30), 30_000],
    [1, limited(1), 1000],
    [6, limited(1), 30_000],
    [1, limited(86_400), 300_000],
    [2, new WeftError('WEFT_API_RATE_LIMITED', 'no header'), backoffMs(2)],
  ];
  for (const [failures, err, ms] of cases) t.is(retryDelayMs(failures, err), ms, `${failures} failures, ${(err as Error).message}`);
});

test('a sidecar whose address is told to wait keeps its certificate, shows why on /certs, and renews once allowed', async (t) => {
  const app = await httpEcho('web');
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
  t.teardown(async () => (await mesh.stop(), await app.close()));
  const web = await mesh.sidecar({ service: 'web', appPort: app.port, env: { WEFT_RENEW_EVERY: '1s' } });
  const conn = { url: mesh.url, ca: readFileSync(mesh.bundleFile, 'utf8'), serverIdentity: 'spiffe://shop.example/ns/weft-system/sa/control-plane' };

  // Another workload at the same address (loopback) renews a chain of certificates as fast as it can, each
  // within its own budget, until the sidecar has met the address's limit and shown it.
  let stop = false;
  const hammer = (async () => {
    let svid: Svid = await bootstrap(conn, await mesh.token('catalog'));
    while (!stop) {
      const client = new ControlPlaneClient({ ...conn, cert: svid.chain, key: svid.key });
      try {
        for (let used = 0; used < PER_CERTIFICATE.burst && !stop;) {
          const keys = generateKeyPair();
          const r = await client.request<{ chain: string; identity: string; serial: string; notAfter: string }>('POST', '/v1/identity/renew', { csr: await csrFor(keys) })
            .catch((err: WeftError) => (err.code === 'WEFT_API_RATE_LIMITED' ? null : Promise.reject(err)));
          if (r) (svid = { chain: r.chain, key: privateKeyToPem(keys.privateKey), identity: r.identity, serial: r.serial, notAfter: r.notAfter }), used++;
        }
      } finally {
        client.close();
      }
    }
  })();
  t.teardown(() => void (stop = true));
  let certs: { serial: string; renewal: { failures: number; lastError: string | null; nextAttempt: string } };
  try {
    certs = await waitFor('the sidecar to be told to wait', async () => {
      const c = JSON.parse((await web.admin('/certs')).body) as typeof certs;
      return c.renewal.lastError ? c : undefined;
    }, 30_000, 20);
  } finally {
    stop = true;
    await hammer;
  }
  t.regex(certs.renewal.lastError!, /^too many certificate renewals from \S+ \(200 at once, then 20 a second\); try again in 1 s$/);
  t.true(certs.renewal.failures >= 1);
  t.regex(web.logs(), /"msg":"certificate renewal told to wait; retrying"/);
  t.is((await web.admin('/ready')).status, 200, 'the current certificate stays in use');

  // The address's allowance comes back: the next try renews, and /certs is clear again.
  const after = await waitFor('a renewal after the wait', async () => {
    const c = JSON.parse((await web.admin('/certs')).body) as typeof certs;
    return c.serial !== certs.serial && c.renewal.failures === 0 ? c : undefined;
  }, 15_000);
  t.is(after.renewal.lastError, null);
});
