// The ledger of spent bootstrap tokens after a crash mid-append: the torn line it left must not swallow the next
// token spent, or that token works again after the next restart.

import test from 'ava';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { isWeftError } from '../../errors.ts';
import { startControlPlane } from '../helpers/control-plane.ts';
import { bootstrap } from '../helpers/stub-sidecar.ts';

test('a token spent after a torn ledger line stays spent across the next restart', async (t) => {
  const first = await startControlPlane();
  await first.cp.stop();
  // What a control plane killed (or a machine losing power) halfway through appending a spent token leaves.
  appendFileSync(join(first.dir, 'state', 'used-tokens.jsonl'), '{"jti":"torn-by-a-crash","ex', { mode: 0o600 });

  const second = await startControlPlane({ dir: first.dir });
  const token = await second.tokenFor('web');
  await bootstrap(second.conn, token);
  await second.cp.stop();

  const third = await startControlPlane({ dir: first.dir });
  t.teardown(() => third.cp.stop());
  const replay = await t.throwsAsync(bootstrap(third.conn, token));
  t.true(isWeftError(replay, 'WEFT_TOKEN_REPLAYED'), replay?.message);
});
