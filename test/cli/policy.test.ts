import test from 'ava';
import { join } from 'node:path';
import { startControlPlane } from '../helpers/control-plane.ts';
import { weft } from '../helpers/cli.ts';

const EXAMPLE = 'examples/shop/mesh.yaml';

test('weft policy check explains allow, deny and refusal with the deciding rule (file)', async (t) => {
  const deny = await weft(['policy', 'check', '--from', 'spiffe://shop.example/ns/default/sa/ingress', '--to', 'catalog', '--method', 'GET', '--path', '/items', '-f', EXAMPLE]);
  t.is(deny.code, 3, deny.stderr);
  t.regex(deny.stdout, /^DENY \(403\): GET \/items from spiffe:\/\/shop\.example\/ns\/default\/sa\/ingress to catalog\.default/);
  t.regex(deny.stdout, /decided by default\/catalog-allow-web: no ALLOW rule of default\/catalog-allow-web matched/);

  const allow = await weft(['policy', 'check', '--from', 'spiffe://shop.example/ns/default/sa/web', '--to', 'catalog', '--path', '//x/../items', '-f', EXAMPLE, '--json']);
  t.is(allow.code, 0, allow.stderr);
  t.like(JSON.parse(allow.stdout), { allowed: true, path: '/items', policy: 'default/catalog-allow-web', rule: 0 });

  const refused = await weft(['policy', 'check', '--from', 'none', '--to', 'catalog', '--path', '/items%2f..%2fadmin', '-f', EXAMPLE]);
  t.is(refused.code, 3);
  t.regex(refused.stdout, /REFUSED \(400\): .*encoded slash/);

  const bad = await weft(['policy', 'check', '--from', 'spiffe://shop.example/ns//sa/web', '--to', 'catalog', '--path', '/', '-f', EXAMPLE]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /invalid SPIFFE ID .*empty segment/);
  const unknown = await weft(['policy', 'check', '--from', 'none', '--to', 'nothing', '--path', '/', '-f', EXAMPLE]);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /no Service nothing\.default in examples\/shop\/mesh\.yaml; services: /);
});

test('weft policy check runs against the live config of a control plane', async (t) => {
  const cp = await startControlPlane({ yaml: `apiVersion: weft/v1
kind: Mesh
metadata: {name: mesh}
spec: {trustDomain: shop.example, defaultPolicy: deny}
---
apiVersion: weft/v1
kind: Service
metadata: {name: catalog}
spec: {port: 8081}
---
apiVersion: weft/v1
kind: Service
metadata: {name: web}
spec: {port: 8080}
---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: no-delete}
spec:
  service: catalog
  action: DENY
  rules: [{to: [{methods: [DELETE]}]}]
` });
  t.teardown(() => cp.cp.stop());
  const state = join(cp.dir, 'state');
  const del = await weft(['policy', 'check', '--from', 'spiffe://shop.example/ns/default/sa/web', '--to', 'catalog', '--method', 'delete', '--path', '/items/1', '--state', state]);
  t.is(del.code, 3, del.stderr);
  t.regex(del.stdout, /decided by default\/no-delete rule 0: DENY rule 0 of default\/no-delete matched/);
  t.regex(del.stdout, /evaluated against the live config/);
  const get = await weft(['policy', 'check', '--from', 'spiffe://shop.example/ns/default/sa/web', '--to', 'catalog', '--path', '/items/1', '--state', state]);
  t.is(get.code, 3);
  t.regex(get.stdout, /decided by the mesh default: no policy applies and the mesh default is deny/);
  const web = await weft(['policy', 'check', '--from', 'spiffe://shop.example/ns/default/sa/catalog', '--to', 'web', '--path', '/', '--state', state]);
  t.regex(web.stdout, /^DENY/);
});
