// A sidecar that can never start says why and exits 1 at once, instead of sitting with an admin port that only
// ever says "not ready": a token that is not valid, one already used, one for another service (a refusal no
// retry can change). A command line missing several flags names them all in one go. Being told to wait (429) is
// not such a refusal: the sidecar retries.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { isWeftError } from '../../errors.ts';
import { bootstrap } from '../helpers/stub-sidecar.ts';
import { httpEcho, type App } from '../helpers/apps.ts';
import { weft } from '../helpers/cli.ts';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml } from '../helpers/mesh-yaml.ts';

let mesh: TestMesh;
let app: App;

test.before(async () => {
  app = await httpEcho('catalog');
  mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081}' } }));
});

test.after.always(async () => {
  await mesh?.stop();
  await app?.close();
});

/** The exit status of a sidecar expected to give up, and its last log lines. */
async function exits(p: SidecarProc): Promise<{ code: number | null; logs: string }> {
  const code = await waitFor('the sidecar to exit', () => (p.child.exitCode !== null ? p.child.exitCode : undefined), 15_000).catch((err: Error) => {
    throw new Error(`${err.message}; it logged: ${p.logs().slice(-1500)}`);
  });
  return { code, logs: p.logs() };
}

test('a bootstrap token that is not valid: exit 1, saying so', async (t) => {
  const { code, logs } = await exits(await mesh.sidecar({ service: 'catalog', appPort: app.port, token: 'not-a-token', noWait: true }));
  t.is(code, 1);
  t.regex(logs, /the bootstrap token is not valid: .*\[WEFT_TOKEN_INVALID\]/);
});

test('a token already used: exit 1, saying a token works once', async (t) => {
  const token = await mesh.token('catalog');
  await mesh.sidecar({ service: 'catalog', appPort: app.port, token });
  const { code, logs } = await exits(await mesh.sidecar({ service: 'catalog', appPort: app.port, token, noWait: true }));
  t.is(code, 1);
  t.regex(logs, /was already used; a token works once.*\[WEFT_TOKEN_REPLAYED\]/);
});

test('a token for another service: exit 1, naming the identity, the service and how to get the right token', async (t) => {
  const { code, logs } = await exits(await mesh.sidecar({ service: 'catalog', appPort: app.port, token: await mesh.token('web'), noWait: true }));
  t.is(code, 1);
  t.regex(logs, /the control plane refused this sidecar \(catalog\.default\): certificate identity spiffe:\/\/shop\.example\/ns\/default\/sa\/web may not register as service catalog\.default/);
  t.regex(logs, /weft token --service catalog --namespace default/);
  t.notRegex(logs, /serving the last good config/);
});

test('missing flags are all named in one message (exit 2)', async (t) => {
  const r = await weft(['sidecar', '--service', 'x']);
  t.is(r.code, 2);
  t.is(r.stderr.trim(), "weft: missing --control-plane (or WEFT_CONTROL_PLANE), --trust-bundle (or WEFT_TRUST_BUNDLE), --token or --token-file (or WEFT_TOKEN / WEFT_TOKEN_FILE), --app-port (or WEFT_APP_PORT); see 'weft sidecar --help' [WEFT_CLI_USAGE]");
});

test('a sidecar told to wait (others at its address presented bad tokens) waits and starts, rather than exit', async (t) => {
  // Its own control plane: the refusals below would make the other tests' sidecars wait too.
  const own = await startMesh(meshYaml({ services: { catalog: '{port: 8081}' } }));
  t.teardown(() => own.stop());
  const conn = { url: own.url, ca: readFileSync(own.bundleFile, 'utf8'), serverIdentity: 'spiffe://shop.example/ns/weft-system/sa/control-plane' };
  // Bad tokens from this address until the sidecar has been told to wait, so that its first try meets an
  // empty allowance whatever its start-up takes.
  let told = false;
  let limited = false;
  const hammer = (async () => {
    while (!told) limited = await bootstrap(conn, 'not.a.token').then(() => false, (err: Error) => isWeftError(err, 'WEFT_API_RATE_LIMITED'));
  })();
  await waitFor('the address to be limited', () => limited || undefined, 10_000);
  const catalog = await own.sidecar({ service: 'catalog', appPort: app.port, noWait: true });
  await waitFor('the sidecar to be told to wait', () => /control plane asks this address to wait; retrying/.test(catalog.logs()) || undefined, 15_000).finally(() => (told = true));
  await hammer;
  await waitFor('the sidecar to start once the allowance is back', () => /"msg":"sidecar ready"/.test(catalog.logs()) || undefined, 20_000);
  t.is(catalog.child.exitCode, null);
});
