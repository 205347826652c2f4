// A control plane that goes silent without closing anything (its host vanished, a partition): no FIN, no RST.
// The sidecar must notice from the missing keepalives and reconnect, or it would never hear of the control plane
// again. Stopping the control plane's process (SIGSTOP) keeps its sockets open and silent, as such a host's would.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { isWeftError } from '../../errors.ts';
import { MESH_YAML } from '../helpers/control-plane.ts';
import { freePort, startMesh, waitFor } from '../helpers/mesh.ts';
import { weft } from '../helpers/cli.ts';

test('a sidecar whose control plane falls silent reconnects, and hears its changes again', async (t) => {
  const mesh = await startMesh(MESH_YAML, { controlPlaneEnv: { WEFT_STREAM_KEEPALIVE: '1s' } });
  t.teardown(() => mesh.stop());
  const web = await mesh.sidecar({ service: 'web', appPort: await freePort() });
  const cp = mesh.controlPlane.child;
  cp.kill('SIGSTOP');
  t.teardown(() => void cp.kill('SIGCONT'));

  const line = await waitFor('the sidecar to give up on the silent stream', () => web.logs().split('\n').find((l) => l.includes('control plane stream closed by this side')), 20_000);
  t.regex(line, /nothing from the control plane for \d+\.\d s \(it sends a keepalive every 1 s\)/);
  t.is((await web.admin('/ready')).status, 200, 'it keeps serving with its last good config');

  cp.kill('SIGCONT');
  await mesh.apply(MESH_YAML.replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'));
  await waitFor('the change to reach the sidecar', async () => (/"weight": ?50/.test((await web.admin('/config')).body) ? true : undefined), 30_000);
  t.pass();
});

test('--stream-keepalive outside 1s-30s is refused, naming the flag', async (t) => {
  for (const bad of ['0s', '31s', 'soon']) {
    const r = await weft(['control-plane', '--config', '/nonexistent.yaml', '--stream-keepalive', bad]);
    t.not(r.code, 0);
    t.regex(r.stderr, /--stream-keepalive "(0s|31s|soon)"/);
  }
});

test('a call to a control plane that does not answer fails as unreachable after its timeout', async (t) => {
  const mesh = await startMesh(MESH_YAML);
  t.teardown(() => mesh.stop());
  const op = new ControlPlaneClient({ url: mesh.url, ca: readFileSync(mesh.bundleFile, 'utf8'), serverIdentity: 'spiffe://shop.example/ns/weft-system/sa/control-plane', adminToken: readFileSync(join(mesh.state, 'admin-token'), 'utf8').trim(), callTimeoutMs: 1000 });
  t.teardown(() => op.close());
  await op.request('GET', '/v1/status');
  const cp = mesh.controlPlane.child;
  cp.kill('SIGSTOP');
  t.teardown(() => void cp.kill('SIGCONT'));
  const err = await t.throwsAsync(op.request('GET', '/v1/status'));
  t.true(isWeftError(err) && err.code === 'WEFT_CP_UNREACHABLE', String(err));
  t.regex(err!.message, /no answer in 1 s/);
  cp.kill('SIGCONT');
  await t.notThrowsAsync(op.request('GET', '/v1/status'), 'a later call goes through once it answers again');
});
