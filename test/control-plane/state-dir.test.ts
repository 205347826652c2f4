import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDir } from '../../control-plane/state-dir.ts';

test('readConfig: the file given, else the last applied config.yaml; missing either is an error naming the path', (t) => {
  const state = new StateDir(mkdtempSync(join(tmpdir(), 'weft-state-')));
  const none = t.throws(() => state.readConfig(undefined), { message: `no config: pass --config mesh.yaml (nothing applied yet in ${state.root})` });
  t.is((none as Error & { code?: string }).code, 'WEFT_CONFIG_INVALID');
  const missing = join(state.root, 'nope.yaml');
  t.throws(() => state.readConfig(missing), { message: `${missing}: no such config file` });

  state.ensure();
  writeFileSync(state.path('config.yaml'), 'applied: true\n');
  t.deepEqual(state.readConfig(undefined), ['applied: true\n', state.path('config.yaml')]);
  const given = join(state.root, 'mesh.yaml');
  writeFileSync(given, 'given: true\n');
  t.deepEqual(state.readConfig(given), ['given: true\n', given]);
});

test('secrets: made 0600 when absent; an empty one (a truncated write) is an error naming the file and the fix', (t) => {
  const state = new StateDir(mkdtempSync(join(tmpdir(), 'weft-state-')));
  const token = state.adminToken();
  t.true(token.length >= 32);
  t.is(state.adminToken(), token, 'read back, not made again');
  writeFileSync(state.path('admin-token'), '\n', { mode: 0o600 });
  const err = t.throws(() => state.adminToken());
  t.is((err as Error & { code?: string }).code, 'WEFT_CA_STORE_CORRUPT');
  t.is(err!.message, `${state.path('admin-token')} is empty; delete it and start the control plane again to make a new one`);
});
