// weft canary against a real control plane: concurrent changes all kept (If-Match), a route with no default rule
// gets one, a split it cannot rebalance by name is refused with the way out, and only whole percentages are taken.

import test from 'ava';
import { join } from 'node:path';
import { isWeftError } from '../../errors.ts';
import { configTag } from '../../control-plane/api/config-tag.ts';
import { findService, routeFor } from '../../control-plane/config/lookup.ts';
import { parseMeshConfigOrThrow } from '../../control-plane/config/load.ts';
import { MESH_YAML, startControlPlane, type TestControlPlane } from '../helpers/control-plane.ts';
import { weft } from '../helpers/cli.ts';

const SEARCH = `---
apiVersion: weft/v1
kind: Service
metadata: {name: search, namespace: default}
spec:
  port: 8082
  subsets:
    - {name: a, labels: {track: a}}
    - {name: b, labels: {track: b}}
`;

/** The live split of `service`'s rules, as "subset weight" lists. */
function splits(cp: TestControlPlane, service: string): string[] {
  const config = parseMeshConfigOrThrow(cp.cp.config.source, 'live');
  const route = routeFor(config, findService(config, service, 'default')!);
  return route?.rules.map((r) => r.destinations.map((d) => `${d.subset ?? '(any)'} ${d.weight}`).join(', ')) ?? [];
}

test('concurrent canaries on two services: every change is kept, none overwrites the other', async (t) => {
  const cp = await startControlPlane({ yaml: MESH_YAML + SEARCH });
  t.teardown(() => cp.cp.stop());
  const state = join(cp.dir, 'state');
  for (const [c, s] of [[30, 60], [45, 20], [5, 95]] as const) {
    const [one, two] = await Promise.all([
      weft(['canary', 'catalog', '--subset', 'v2', '--weight', String(c), '--state', state]),
      weft(['canary', 'search', '--subset', 'b', '--weight', String(s), '--state', state]),
    ]);
    t.is(one.code, 0, one.stderr);
    t.is(two.code, 0, two.stderr);
    t.deepEqual(splits(cp, 'catalog'), [`v1 ${100 - c}, v2 ${c}`]);
    t.deepEqual(splits(cp, 'search'), [`a ${100 - s}, b ${s}`]);
  }
  // What canary relies on: a PUT made from a config that changed since is refused, not applied.
  const op = cp.operator();
  t.teardown(() => op.close());
  const stale = configTag(MESH_YAML);
  const err = await t.throwsAsync(op.request('PUT', '/v1/config', MESH_YAML, { contentType: 'application/yaml', headers: { 'if-match': stale } }));
  t.true(isWeftError(err, 'WEFT_CONFIG_CONFLICT'), err?.message);
  t.deepEqual(splits(cp, 'catalog'), ['v1 95, v2 5']);
});

test('a route whose every rule matches on something gets a default rule; a split with an (any) share is refused', async (t) => {
  const headerOnly = MESH_YAML.replace(/rules:\n[\s\S]*$/, 'rules:\n    - match: [{headers: {x-canary: {exact: "true"}}}]\n      destinations: [{subset: v2}]\n');
  const cp = await startControlPlane({ yaml: headerOnly });
  t.teardown(() => cp.cp.stop());
  const state = join(cp.dir, 'state');
  const r = await weft(['canary', 'catalog', '--subset', 'v2', '--weight', '20', '--state', state]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(splits(cp, 'catalog'), ['v2 100', 'v1 80, v2 20'], 'the header rule as it was, then the new default');

  const anyShare = MESH_YAML.replace('        - {subset: v1, weight: 90}\n', '        - {weight: 90}\n');
  cp.cp.apply(anyShare, 'mesh.yaml');
  const refused = await weft(['canary', 'catalog', '--subset', 'v2', '--weight', '20', '--state', state]);
  t.is(refused.code, 2);
  t.regex(refused.stderr, /the default rule of Route default\/catalog \(rule 0\) splits \(any subset\) 90%, v2 10%: a share for any subset cannot be rebalanced by name; give it a subset in the config/);
  t.deepEqual(splits(cp, 'catalog'), ['(any) 90, v2 10'], 'nothing applied');

  for (const bad of [' ', '0x0a', '1e1', '101', '12.5']) {
    const w = await weft(['canary', 'catalog', '--subset', 'v2', '--weight', bad, '--state', state]);
    t.is(w.code, 2, bad);
    t.regex(w.stderr, /must be a whole percentage from 0 to 100/, bad);
  }
});
