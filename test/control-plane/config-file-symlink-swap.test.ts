// The watched config file as Kubernetes mounts a ConfigMap: mesh.yaml -> ..data/mesh.yaml, ..data -> ..<version>,
// and an update renames a new ..data over the old one. Nothing named mesh.yaml changes, yet the config did.

import test from 'ava';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfigFileEvent } from '../../control-plane/file-watch.ts';
import { tempDir } from '../helpers/ca.ts';
import { MESH_YAML, startControlPlane } from '../helpers/control-plane.ts';
import { waitFor } from '../helpers/mesh.ts';

test('a config file reached through a symlink is applied when the link is swapped by a rename', async (t) => {
  const mount = tempDir('weft-configmap-');
  mkdirSync(join(mount, '..v1'));
  writeFileSync(join(mount, '..v1', 'mesh.yaml'), MESH_YAML);
  symlinkSync('..v1', join(mount, '..data'));
  symlinkSync(join('..data', 'mesh.yaml'), join(mount, 'mesh.yaml'));
  const events: ConfigFileEvent[] = [];
  const cp = await startControlPlane({ configPath: join(mount, 'mesh.yaml'), onConfigFile: (e) => void events.push(e) });
  t.teardown(() => cp.cp.stop());

  const edited = MESH_YAML.replace('weight: 90', 'weight: 70').replace('weight: 10', 'weight: 30');
  mkdirSync(join(mount, '..v2'));
  writeFileSync(join(mount, '..v2', 'mesh.yaml'), edited);
  symlinkSync('..v2', join(mount, '..data_tmp'));
  renameSync(join(mount, '..data_tmp'), join(mount, '..data'));

  await waitFor('the swapped config applied', () => events.find((e) => 'version' in e), 5000);
  t.is(cp.cp.config.source, edited);
});
