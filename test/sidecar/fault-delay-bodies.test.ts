// A route's fault delay holds an HTTP/1 request before anything reads its body, through a real sidecar: a body that
// breaks its framing meanwhile gets a 400 without taking the sidecar down, and a caller that leaves meanwhile takes
// its request with it (it never reaches the app, where it would wait for ever for the rest of its body).

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { controllable, get, MESH } from '../helpers/catalog.ts';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { routeYaml } from '../helpers/mesh-yaml.ts';

const DELAY_MS = 700;
let mesh: TestMesh;
let app: Awaited<ReturnType<typeof controllable>>;
let web: SidecarProc;

test.before(async () => {
  app = await controllable('v1');
  mesh = await startMesh(MESH(`---\n${routeYaml('catalog', `    - destinations: [{subset: v1}]\n      fault: {delay: {fixed: ${DELAY_MS}ms, percent: 100}}\n`)}`));
  await mesh.sidecar({ service: 'catalog', labels: { version: 'v1' }, appPort: app.port });
  web = await mesh.sidecar({ service: 'web', appPort: 1 });
  await waitFor('catalog through the delay', async () => (await get(web, '/warm')).status === 200 || undefined);
});

test.after.always(async () => {
  await mesh?.stop();
  await app?.close();
});

/** Writes `bytes` to web's outbound port; resolves with what came back once the sidecar closed (or after `ms`). */
async function exchange(bytes: string, ms = 3000): Promise<string> {
  const s = net.connect(web.ports.outbound, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  let got = '';
  s.setEncoding('latin1').on('data', (d: string) => (got += d));
  s.write(bytes);
  await Promise.race([once(s, 'close'), sleep(ms)]);
  s.destroy();
  return got;
}

test.serial('a body that breaks its framing during the delay gets a 400, and the sidecar goes on serving', async (t) => {
  const answer = await exchange('POST /broken HTTP/1.1\r\nHost: catalog\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n');
  t.regex(answer, /^HTTP\/1\.1 400 /, answer);
  await sleep(DELAY_MS + 300); // past the delay, when the call goes on with the broken body
  t.is(web.child.exitCode, null, `web's sidecar exited: ${web.logs().slice(-1500)}`);
  const after = await get(web, '/after');
  t.is(after.status, 200);
  t.false(app.state.paths.includes('/broken'));
});

test.serial('a caller that leaves mid-body during the delay takes its request with it: the app never sees it', async (t) => {
  const s = net.connect(web.ports.outbound, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  s.write('POST /left HTTP/1.1\r\nHost: catalog\r\nContent-Length: 10\r\n\r\nabc');
  await sleep(100);
  s.destroy();
  await sleep(DELAY_MS + 500);
  t.false(app.state.paths.includes('/left'), 'the request went on to the app without its caller, and the rest of its body never comes');
  t.is(web.child.exitCode, null);
  t.is((await get(web, '/next')).status, 200);
});

test.serial('a caller that leaves during the delay after its whole request takes it with it too', async (t) => {
  const s = net.connect(web.ports.outbound, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  s.write('GET /left-whole HTTP/1.1\r\nHost: catalog\r\n\r\n');
  await sleep(100);
  s.destroy();
  await sleep(DELAY_MS + 500);
  t.false(app.state.paths.includes('/left-whole'), 'the request went on to the app after its caller had gone');
});
