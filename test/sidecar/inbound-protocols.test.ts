// What an inbound port lets a caller speak, through a real sidecar, with raw sockets and certificates signed by
// the mesh's CA (a caller with a valid identity, trying its luck):
// - the ALPN protocols follow the service's protocol: weft-tcp (authorized once, on identity and port, bytes
//   passed blind) only for a tcp service, HTTP only for an HTTP one, so no caller steps around the HTTP rules;
// - on an upgrade, the caller's bytes after the head go to the app only after it answered 101: an app that does
//   not switch never reads them as a request no one authorized; h2c, a body or two Hosts are refused outright;
// - PERMISSIVE plaintext to a tcp service is TCP with no identity, h2c to a grpc service is gRPC with none;
//   silent connections and half handshakes are closed; when the mesh turns STRICT, plaintext connections still
//   open are closed.

import test from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { grpcPrices, pricesClient, tcpEcho, type App } from '../helpers/apps.ts';
import { svidFromCa } from '../helpers/ca.ts';
import { startMesh, waitFor, type SidecarProc, type TestMesh } from '../helpers/mesh.ts';
import { meshYaml, policyYaml } from '../helpers/mesh-yaml.ts';
import { sample } from '../helpers/metrics.ts';

const WEB = 'spiffe://shop.example/ns/default/sa/web';
const ROOT = 'spiffe://shop.example/ns/default/sa/root-admin';
const yaml = (mode: 'STRICT' | 'PERMISSIVE') => meshYaml({ mesh: `mtls: {mode: ${mode}}`, services: { web: '{port: 8080}', catalog: '{port: 8081}', echo: '{port: 8083, protocol: tcp}', prices: '{port: 8084, protocol: grpc}' } }) + `---
${policyYaml('catalog-public', 'catalog', 'ALLOW', `    - to: [{paths: ["/public/*"]}]\n    - from: [{principals: ["${WEB}"]}]\n`)}---
${policyYaml('catalog-no-admin', 'catalog', 'DENY', '    - to: [{paths: ["/admin", "/admin/*"]}]\n')}---
${policyYaml('echo-open', 'echo', 'ALLOW', '    - to: [{ports: [8083]}]\n')}---
${policyYaml('prices-open', 'prices', 'ALLOW', '    - to: [{ports: [8084]}]\n')}`;

/**
 * An HTTP app as naive as many are: it reads request heads off its connection one after another and answers
 * each 200, keeping the connection, and treats `Upgrade: websocket` as an ordinary request; only
 * `Upgrade: test-echo` switches (101), after which it echoes bytes. `seen` has each request line and the
 * identity header it came with.
 */
async function naiveApp(): Promise<App> {
  const seen: App['seen'] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    let buf = '';
    let switched = false;
    s.setEncoding('latin1').on('data', (d: string) => {
      if (switched) return void s.write(d);
      buf += d;
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1 && !switched; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const [line, ...fields] = head.split('\r\n');
        const header = (name: string) => fields.find((f) => f.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim();
        seen.push({ method: line!.split(' ')[0]!, url: line!.split(' ')[1]!, headers: { host: header('host'), 'x-weft-peer-identity': header('x-weft-peer-identity') } });
        if (header('upgrade') === 'test-echo') {
          switched = true;
          s.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test-echo\r\n\r\n');
          if (buf) s.write(buf);
          buf = '';
        } else s.write('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => new Promise((r) => (server.close(() => r()), setTimeout(r, 500))) };
}

let mesh: TestMesh;
let app: App;
let echoApp: App;
let catalog: SidecarProc;
let echo: SidecarProc;
let pricesApp: App;
let prices: SidecarProc;
let web: { key: string; cert: string; ca: string };

test.before(async () => {
  app = await naiveApp();
  echoApp = await tcpEcho();
  mesh = await startMesh(yaml('PERMISSIVE'));
  catalog = await mesh.sidecar({ service: 'catalog', appPort: app.port });
  echo = await mesh.sidecar({ service: 'echo', appPort: echoApp.port });
  pricesApp = await grpcPrices();
  prices = await mesh.sidecar({ service: 'prices', appPort: pricesApp.port });
  web = await svidFromCa(mesh.state, WEB);
});

test.after.always(async () => {
  await mesh?.stop();
  await app?.close();
  await echoApp?.close();
  await pricesApp?.close();
});

/**
 * Connects over mTLS as web offering `alpn` (none: no ALPN at all), writes `bytes`, returns what came back: once
 * the connection closes, `done(answer)` holds, or `waitMs` has passed.
 */
async function overTls(port: number, alpn: string[] | null, bytes: string, waitMs = 1500, done: (answer: string) => boolean = () => false): Promise<{ alpn: string | false | null; answer: string; refused: boolean }> {
  const s = tls.connect({ host: '127.0.0.1', port, ...web, ...(alpn ? { ALPNProtocols: alpn } : {}), checkServerIdentity: () => undefined });
  let refused = false;
  s.on('error', () => (refused = true));
  let answer = '';
  let finished: () => void = () => {};
  s.setEncoding('latin1').on('data', (d: string) => ((answer += d), done(answer) && finished()));
  // (not events.once: it rejects on the 'error' a refused handshake emits)
  const connected = await new Promise<boolean>((resolve) => (s.once('secureConnect', () => resolve(true)), s.once('close', () => resolve(false))));
  if (connected) {
    s.write(bytes);
    await new Promise<void>((r) => ((finished = r), s.once('close', () => r()), setTimeout(r, waitMs)));
  }
  refused ||= !connected || (s.destroyed && answer === '');
  const negotiated = connected ? s.alpnProtocol : null;
  s.destroy();
  return { alpn: negotiated ?? null, answer, refused };
}

const smuggled = `GET /admin/keys HTTP/1.1\r\nHost: catalog\r\nx-weft-peer-identity: ${ROOT}\r\n\r\n`;
const sawAdmin = () => app.seen.some((s) => s.url.startsWith('/admin'));

test.serial("an HTTP service's inbound does not take weft-tcp: raw bytes never reach the app past its path rules", async (t) => {
  const control = await overTls(catalog.ports.inbound, ['http/1.1'], smuggled.replace('\r\n\r\n', '\r\nconnection: close\r\n\r\n'));
  t.regex(control.answer, /^HTTP\/1\.1 403/);
  const raw = await overTls(catalog.ports.inbound, ['weft-tcp'], smuggled);
  t.true(raw.refused, `weft-tcp was accepted (${raw.alpn}): ${raw.answer.slice(0, 200)}`);
  t.is(raw.answer, '');
  t.false(sawAdmin(), 'the app got /admin/keys');
  // Offered along with HTTP, weft-tcp is passed over for HTTP.
  const both = await overTls(catalog.ports.inbound, ['weft-tcp', 'http/1.1'], smuggled.replace('\r\n\r\n', '\r\nconnection: close\r\n\r\n'));
  t.is(both.alpn, 'http/1.1');
  t.regex(both.answer, /^HTTP\/1\.1 403/);
});

test.serial("a tcp service's inbound takes weft-tcp only: HTTP over http/1.1, h2 or no ALPN is refused", async (t) => {
  const ok = await overTls(echo.ports.inbound, ['weft-tcp'], 'hello\n', 10_000, (a) => a.endsWith('\n'));
  t.is(ok.alpn, 'weft-tcp');
  t.is(ok.answer, 'echo: hello\n');
  const connections = echoApp.seen.length;
  for (const alpn of [['http/1.1'], ['h2'], null]) {
    const r = await overTls(echo.ports.inbound, alpn, 'GET / HTTP/1.1\r\nHost: echo\r\n\r\n', 1000);
    t.true(r.refused, `${JSON.stringify(alpn)} was accepted (${r.alpn}): ${r.answer.slice(0, 200)}`);
    t.is(r.answer, '', JSON.stringify(alpn));
  }
  t.is(echoApp.seen.length, connections, 'the app got a connection');
});

test.serial('bytes after an upgrade head reach the app only once it answered 101', async (t) => {
  // The app does not switch (200 to a websocket upgrade); the caller's next request rode in the same write.
  const upgrade = (proto: string) => `GET /public/ws HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade\r\nUpgrade: ${proto}\r\n\r\n`;
  const refused = await overTls(catalog.ports.inbound, ['http/1.1'], upgrade('websocket') + smuggled);
  t.regex(refused.answer, /^HTTP\/1\.1 200/);
  t.is((refused.answer.match(/HTTP\/1\.1/g) ?? []).length, 1, refused.answer);
  t.false(sawAdmin(), `the app read the bytes after a refused upgrade as a request: ${JSON.stringify(app.seen)}`);
  // A denied upgrade is a denial like any other, counted by policy and rule.
  const denials = async () => sample((await catalog.admin('/metrics')).body, 'weft_policy_denials_total', { policy: 'default/catalog-no-admin', rule: '0' }) || 0;
  const before = await denials();
  const denied = await overTls(catalog.ports.inbound, ['http/1.1'], upgrade('websocket').replace('/public/ws', '/admin/ws'));
  t.regex(denied.answer, /^HTTP\/1\.1 403/);
  t.is(await denials(), before + 1);
  // An app that does switch gets them, after its 101: a client may send its first frame with the head.
  const switched = await overTls(catalog.ports.inbound, ['http/1.1'], `${upgrade('test-echo')}first frame`, 10_000, (a) => a.endsWith('first frame'));
  t.regex(switched.answer, /^HTTP\/1\.1 101/);
  t.true(switched.answer.endsWith('\r\n\r\nfirst frame'), switched.answer);
});

test.serial('an upgrade to h2c, with a body, or with two Hosts is refused with 400 before the app', async (t) => {
  const before = app.seen.length;
  const cases = {
    h2c: 'GET /public/a HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    body: 'POST /public/b HTTP/1.1\r\nHost: catalog\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello',
    hosts: 'GET /public/c HTTP/1.1\r\nHost: catalog\r\nHost: evil\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const r = await overTls(catalog.ports.inbound, ['http/1.1'], bytes);
    t.regex(r.answer, /^HTTP\/1\.1 400 [^\r]*\r\nx-weft-reason: bad-request\r\n/, name);
  }
  t.is(app.seen.length, before, JSON.stringify(app.seen.slice(before)));
});

test.serial('PERMISSIVE: plaintext to a tcp service is TCP (no identity), under its policy', async (t) => {
  const s = net.connect(echo.ports.inbound, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.setEncoding('utf8').on('data', (d: string) => (got += d));
  s.write('plain line\n');
  await waitFor('the echo', () => got === 'echo: plain line\n' || undefined, 5000).catch(() => {});
  s.destroy();
  t.is(got, 'echo: plain line\n');
});

test.serial('an HTTP/1.0 request without Host reaches the app with the service\'s name as its Host', async (t) => {
  const s = net.connect(catalog.ports.inbound, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.setEncoding('latin1').on('data', (d: string) => (got += d));
  s.write('GET /public/old HTTP/1.0\r\n\r\n');
  await waitFor('the answer', () => /ok\n$/.test(got) || undefined, 5000).catch(() => {});
  s.destroy();
  t.regex(got, /^HTTP\/1\.[01] 200/);
  t.is(app.seen.find((x) => x.url === '/public/old')?.headers.host, 'catalog');
});

test.serial('PERMISSIVE: a connection that sends nothing, or half a TLS handshake, is closed', async (t) => {
  // Until its first byte, neither the TLS nor the HTTP server has the connection, nor their timeouts; a
  // handshake that stops half-way hits the handshake timeout, which logged and left the socket open.
  const open = (bytes: Buffer | null) => {
    const s = net.connect(catalog.ports.inbound, '127.0.0.1');
    s.on('error', () => {});
    if (bytes) s.once('connect', () => s.write(bytes));
    s.resume(); // read, so that the close is seen
    return Promise.race([once(s, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 25_000))]).finally(() => s.destroy());
  };
  const [silent, half] = await Promise.all([open(null), open(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))]);
  t.true(silent, 'the silent connection was closed');
  t.true(half, 'the half handshake was closed');
  // (the log line travels a pipe: it may come in just after the close)
  const logged = await waitFor('the handshake timeout in the log', () => /"inbound TLS handshake refused","error":"TLS handshake timeout"/.test(catalog.logs()) || undefined, 5000).catch(() => false);
  t.true(logged, catalog.logs().slice(-1500));
});

test.serial('PERMISSIVE: plaintext gRPC (h2c with prior knowledge) reaches a grpc service, with no identity', async (t) => {
  // A client with no sidecar yet, during a migration: Istio's PERMISSIVE takes h2c too.
  const client = pricesClient(prices.ports.inbound);
  t.teardown(() => client.close());
  const r = await new Promise<{ err: Error | null; v?: { sku: string; caller: string } }>((resolve) => client.Get({ sku: 'apple' }, { deadline: Date.now() + 10_000 }, (err: Error | null, v: { sku: string; caller: string }) => resolve({ err, v })));
  t.is(r.err, null, r.err?.message);
  t.is(r.v?.sku, 'apple');
  t.is(r.v?.caller, '', 'no identity header for a plaintext caller');
});

test.serial('when the mesh turns STRICT, plaintext connections made while PERMISSIVE are closed', async (t) => {
  const s = net.connect(catalog.ports.inbound, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.setEncoding('latin1').on('data', (d: string) => (got += d));
  s.write('GET /public/before HTTP/1.1\r\nHost: catalog\r\n\r\n');
  await waitFor('the first answer', () => /^HTTP\/1\.1 200[\s\S]*ok\n$/.test(got) || undefined, 5000);
  const plainTcp = net.connect(echo.ports.inbound, '127.0.0.1');
  plainTcp.on('error', () => {});
  plainTcp.write('still here\n');
  await once(plainTcp, 'data');
  const closed = Promise.all([once(s, 'close'), once(plainTcp, 'close')]);
  await mesh.apply(yaml('STRICT'));
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`plaintext connections still open; catalog log: ${catalog.logs().slice(-1500)}`)), 10_000))]);
  t.true(s.destroyed && plainTcp.destroyed);
  t.regex(catalog.logs(), /"mTLS is STRICT now: closing plaintext connections"/);
  // From now on, plaintext gets nothing.
  const late = net.connect(catalog.ports.inbound, '127.0.0.1');
  late.on('error', () => {});
  let answer = '';
  late.setEncoding('latin1').on('data', (d: string) => (answer += d));
  late.write('GET /public/after HTTP/1.1\r\nHost: catalog\r\n\r\n');
  await Promise.race([once(late, 'close'), new Promise((r) => setTimeout(r, 2000))]);
  late.destroy();
  t.is(answer, '');
  t.false(app.seen.some((x) => x.url === '/public/after'));
});
