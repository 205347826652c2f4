// What a config cannot change while the mesh runs: the trust domain, and the identity of a Service whose sidecars
// are connected (every call to them would fail the identity check). Refused whole, at the field, nothing applied.

import test from 'ava';
import { ConfigError } from '../../control-plane/config/issues.ts';
import { MESH_YAML, startControlPlane } from '../helpers/control-plane.ts';
import { bootstrap, StubSidecar } from '../helpers/stub-sidecar.ts';

const WITH_ACCOUNT = MESH_YAML.replace('  port: 8081\n', '  port: 8081\n  serviceAccount: catalog-sa\n');

test('a serviceAccount change is refused while sidecars run as the old identity, and taken when none do', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  // No catalog sidecar yet: the change is fine, and so is changing it back.
  const first = cp.cp.apply(WITH_ACCOUNT, 'mesh.yaml');
  t.true(first.version > 0);
  cp.cp.apply(MESH_YAML, 'mesh.yaml');

  const op = cp.operator();
  const { token } = await op.request<{ token: string }>('POST', '/v1/tokens', { service: 'catalog', namespace: 'default' });
  op.close();
  const catalog = new StubSidecar({ ...cp.conn, service: 'catalog' }, await bootstrap(cp.conn, token));
  t.teardown(() => catalog.close());
  await catalog.connect();
  const before = cp.cp.config.source;
  const err = t.throws(() => cp.cp.apply(WITH_ACCOUNT, 'mesh.yaml'), { instanceOf: ConfigError });
  const line = WITH_ACCOUNT.split('\n').indexOf('  serviceAccount: catalog-sa') + 1;
  t.regex(
    err!.message,
    new RegExp(
      `mesh\\.yaml:${line}:19: Service default/catalog spec\\.serviceAccount: changes the identity of catalog\\.default from spiffe://shop\\.example/ns/default/sa/catalog to spiffe://shop\\.example/ns/default/sa/catalog-sa while 1 sidecar runs as the old one, and every call to them would fail the identity check; stop them, apply, then start them with tokens for the new account`,
    ),
  );
  t.is(cp.cp.config.source, before, 'nothing applied');
});

test('a trust domain change is refused live, at the field', async (t) => {
  const cp = await startControlPlane();
  t.teardown(() => cp.cp.stop());
  const err = t.throws(() => cp.cp.apply(MESH_YAML.replace('trustDomain: shop.example', 'trustDomain: other.example'), 'mesh.yaml'), { instanceOf: ConfigError });
  t.regex(err!.message, /mesh\.yaml:5:16: Mesh mesh spec\.trustDomain: other\.example differs from the running trust domain shop\.example; it cannot change live/);
});
