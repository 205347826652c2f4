// A policy change reaches what is already open: HTTP requests are authorized one by one, but a raw TCP connection
// (protocol: tcp) and a WebSocket tunnel are authorized once, when they open. When a new policy denies them, the
// inbound closes them, as Istio's listeners drain connections a changed filter chain no longer admits; otherwise
// a DENY written against a caller would leave its open connections carrying bytes to the app indefinitely.

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import WebSocket from 'ws';
import { httpEcho, tcpEcho, type App } from '../../helpers/apps.ts';
import { startMesh, waitFor } from '../../helpers/mesh.ts';
import { meshYaml, policyYaml } from '../../helpers/mesh-yaml.ts';

const WEB = 'spiffe://shop.example/ns/default/sa/web';
const services = { web: '{port: 8080}', catalog: '{port: 8081}', echo: '{port: 8083, protocol: tcp}' };
const denyWeb = (service: string) => policyYaml(`${service}-deny-web`, service, 'DENY', `    - from: [{principals: ["${WEB}"]}]\n`);

/** Resolves with what arrives on `s` within `ms`, or sooner if it closes. */
async function within(s: net.Socket, ms: number): Promise<string> {
  let got = '';
  const onData = (d: Buffer) => (got += d.toString());
  s.on('data', onData);
  await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, ms))]);
  s.off('data', onData);
  return got;
}

test('a TCP connection and a WebSocket tunnel opened while allowed are closed when a new policy denies their caller', async (t) => {
  const apps: Record<string, App> = { web: await httpEcho('web'), catalog: await httpEcho('catalog'), echo: await tcpEcho() };
  const mesh = await startMesh(meshYaml({ services }));
  t.teardown(async () => (await mesh.stop(), await Promise.all(Object.values(apps).map((a) => a.close()))));
  await mesh.sidecar({ service: 'catalog', appPort: apps.catalog!.port });
  await mesh.sidecar({ service: 'echo', appPort: apps.echo!.port });
  const web = await mesh.sidecar({ service: 'web', appPort: apps.web!.port, upstreams: ['catalog', 'echo'] });

  const tcp = await waitFor('a TCP connection through the mesh', async () => {
    const s = net.connect(web.ports.upstreams.echo!, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    s.write('one\n');
    if ((await within(s, 1000)).includes('echo: one')) return s;
    s.destroy();
    return undefined;
  });
  t.teardown(() => tcp.destroy());
  const ws = new WebSocket(`ws://127.0.0.1:${web.ports.upstreams.catalog}/chat`);
  ws.on('error', () => {});
  t.teardown(() => ws.terminate());
  await once(ws, 'open');
  ws.send('hello');
  t.regex(String((await once(ws, 'message'))[0]), /catalog echo: hello/);

  await mesh.apply(meshYaml({ services, extra: `${denyWeb('catalog')}---\n${denyWeb('echo')}` }));
  // In force at both inbounds: a new request and a new connection from web are refused.
  await waitFor('the DENY at catalog', async () => (await fetch(`http://127.0.0.1:${web.ports.upstreams.catalog}/x`)).status === 403 || undefined);
  await waitFor('the DENY at echo', async () => {
    const s = net.connect(web.ports.upstreams.echo!, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    s.write('probe\n');
    const got = await within(s, 1000);
    s.destroy();
    return got.includes('echo: probe') ? undefined : true;
  });
  const tcpSeen = apps.echo!.seen.length;

  // The connections opened before the change carry nothing more.
  if (!tcp.destroyed) tcp.write('two\n');
  t.notRegex(await within(tcp, 1500), /echo: two/, 'the TCP connection still reaches the app');
  const answers: string[] = [];
  ws.on('message', (m) => answers.push(String(m)));
  if (ws.readyState === WebSocket.OPEN) ws.send('again');
  await new Promise((r) => setTimeout(r, 1500));
  t.deepEqual(answers, [], 'the WebSocket tunnel still reaches the app');
  t.not(ws.readyState, WebSocket.OPEN);
  t.is(apps.echo!.seen.length, tcpSeen);
});
