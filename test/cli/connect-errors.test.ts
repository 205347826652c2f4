// The connection flags' mistakes, as an operator meets them: a trust bundle that is not the mesh's is named.

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/control-plane.ts';
import { tempDir } from '../helpers/ca.ts';
import { weft } from '../helpers/cli.ts';

test("weft status with another mesh's bundle in --ca names the flag and the file", async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const dir = tempDir('weft-other-bundle-');
  const other = join(dir, 'other.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', other, '-subj', '/CN=another root', '-days', '1'], { stdio: 'ignore' });
  const r = await weft(['status', '--state', join(cp.dir, 'state'), '--ca', other]);
  t.not(r.code, 0);
  t.regex(r.stderr, new RegExp(`cannot reach the control plane at \\S+: its certificate does not chain to the trust bundle --ca ${other.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(unable to get local issuer certificate\\): is that this mesh's bundle\\? \\[WEFT_CP_UNREACHABLE\\]`));
});
