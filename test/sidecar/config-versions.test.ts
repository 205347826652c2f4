// One version number from weft apply to every sidecar: an apply that changes nothing a sidecar holds still
// moves that sidecar to the applied version (an empty delta, applied without a rebuild), so "did my apply
// land?" is answered by comparing numbers: weft apply's, /config's, weft status's.

import test from 'ava';
import { httpEcho } from '../helpers/apps.ts';
import { weft } from '../helpers/cli.ts';
import { writeTemp } from '../helpers/ca.ts';
import { startMesh, waitFor } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

const YAML = meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } });

test('an apply that changes only web\'s config still brings catalog\'s sidecar to the applied version; status agrees', async (t) => {
  const app = await httpEcho('app');
  const mesh = await startMesh(YAML);
  t.teardown(async () => (await mesh.stop(), await app.close()));
  const web = await mesh.sidecar({ service: 'web', appPort: app.port });
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: app.port });
  const version = async (s: typeof web) => JSON.parse((await s.admin('/config')).body).version as number;

  // An AuthorizationPolicy for web: only web's snapshot has anything new in it.
  const file = writeTemp(mesh.dir, 'web-policy.yaml', `${YAML}---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: web-from-catalog}
spec:
  service: web
  rules:
    - from: [{principals: ["spiffe://shop.example/ns/default/sa/catalog"]}]
`);
  // Settled first: both endpoints registered and pushed, both sidecars SYNCED.
  await waitFor('the mesh to settle', async () => {
    const report = JSON.parse((await weft(['status', '--json', '--state', mesh.state])).stdout) as { version: number; sidecars: { ack: string; ackedVersion: number }[] };
    return (report.sidecars.length === 2 && report.sidecars.every((x) => x.ack === 'SYNCED' && x.ackedVersion === report.version)) || undefined;
  }, 10_000);
  const catalogBefore = JSON.parse((await catalog.admin('/config')).body);
  const r = await weft(['apply', '-f', file, '--state', mesh.state]);
  t.is(r.code, 0, r.stderr);
  const applied = Number(/version (\d+)/.exec(r.stdout)![1]);
  await waitFor('both sidecars at the applied version', async () => ((await version(web)) === applied && (await version(catalog)) === applied) || undefined, 10_000).catch(async () => {
    t.fail(`apply said ${applied}; web holds ${await version(web)}, catalog ${await version(catalog)}`);
  });
  // catalog's config itself is what it was.
  t.deepEqual(JSON.parse((await catalog.admin('/config')).body).snapshot, catalogBefore.snapshot);
  const status = await waitFor('status to show both at it', async () => {
    const s = await weft(['status', '--json', '--state', mesh.state]);
    const report = JSON.parse(s.stdout) as { version: number; configVersion: number; sidecars: { service: string; ackedVersion: number; ack: string }[] };
    return report.sidecars.every((x) => x.ackedVersion === applied && x.ack === 'SYNCED') ? report : undefined;
  }, 10_000);
  t.is(status.version, applied);
  t.is(status.configVersion, applied);
});
