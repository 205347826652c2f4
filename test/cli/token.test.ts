// weft token: the token alone on stdout; a Service the live config does not have is told on stderr, with the
// closest name, and the token is still issued (a workload may come before its config).

import test from 'ava';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/control-plane.ts';
import { weft } from '../helpers/cli.ts';

test('a token for a misspelt Service comes with a warning naming the closest one; a known one comes alone', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const state = join(cp.dir, 'state');

  const typo = await weft(['token', '--service', 'catalgo', '--state', state]);
  t.is(typo.code, 0, typo.stderr);
  t.regex(typo.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/, 'stdout is the token alone');
  t.regex(typo.stderr, /^weft: warning: no Service catalgo in namespace default in the live config; did you mean catalog\? \(the token is issued/m);

  const known = await weft(['token', '--service', 'catalog', '--state', state]);
  t.is(known.code, 0, known.stderr);
  t.is(known.stderr, '');
});
