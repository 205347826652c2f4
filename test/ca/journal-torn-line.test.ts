// The issuance journal after a crash mid-append: the torn line it left must not swallow the next record, nor make
// the journal unreadable (revocation and the end of a root rotation read it).

import test from 'ava';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaStore } from '../../ca/store.ts';
import { makeCsr, tempDir, TD, WEB } from '../helpers/ca.ts';
import { startControlPlane } from '../helpers/control-plane.ts';
import { bootstrap } from '../helpers/stub-sidecar.ts';

test('a certificate issued after a torn journal line is journalled and read back', async (t) => {
  const dir = join(tempDir(), 'ca');
  const store = await CaStore.init(dir, { trustDomain: TD });
  appendFileSync(store.journal.path, '{"serial":"0A1B","identity":"spiffe://shop.exa');
  const svid = CaStore.open(dir).authority().sign((await makeCsr()).pem, WEB);
  const records = CaStore.open(dir).journal.read();
  t.deepEqual(records.map((r) => r.serial), [svid.serial]);
});

test('weft revoke still works after a crash tore the last journal line', async (t) => {
  const first = await startControlPlane();
  await first.cp.stop();
  appendFileSync(join(first.dir, 'state', 'ca', 'journal.jsonl'), '{"serial":"0A1B","identity":"spiffe://shop.exa');
  const cp = await startControlPlane({ dir: first.dir });
  t.teardown(() => cp.cp.stop());
  const svid = await bootstrap(cp.conn, await cp.tokenFor('web'));
  const op = cp.operator();
  t.teardown(() => op.close());
  const { revoked } = await op.request<{ revoked: { serial: string }[] }>('POST', '/v1/revocations', { serial: svid.serial });
  t.deepEqual(revoked.map((r) => r.serial), [svid.serial]);
});
