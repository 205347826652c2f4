// bench:push — connect N simulated sidecars to a real control plane process, apply a change, and time how
// long until each sidecar holds the new version. Also the control plane's RSS. Writes bench/results/push.json.
//
// The control plane runs as its own process (`weft control-plane`), so its RSS is its own; the simulated
// sidecars (test/helpers/stub-sidecar.ts: each a ControlPlaneClient with its own certificate) run in this one, and
// report as a real sidecar does: ACKs, and a heartbeat every 5 s, up their full-duplex stream, so that each holds
// one mTLS connection (HTTP/1.1) to the control plane.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaStore } from '../ca/store.ts';
import { generateKeyPair, privateKeyToPem } from '../ca/keys.ts';
import { ControlPlaneClient } from '../control-plane/client.ts';
import { csrFor, StubSidecar } from '../test/helpers/stub-sidecar.ts';

const SIDECARS = Number(process.env.BENCH_SIDECARS ?? 1000);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 50);
const SETTLE_SECONDS = Number(process.env.BENCH_SETTLE_SECONDS ?? 60);
const REPO = fileURLToPath(new URL('../', import.meta.url));

function meshYaml(weightV1: number): string {
  const docs = ['apiVersion: weft/v1\nkind: Mesh\nmetadata: {name: mesh}\nspec:\n  trustDomain: bench.example\n'];
  for (let i = 0; i < SERVICES; i++) {
    docs.push(`apiVersion: weft/v1\nkind: Service\nmetadata: {name: svc-${i}}\nspec:\n  port: ${8000 + i}\n  subsets:\n    - {name: v1, labels: {version: v1}}\n    - {name: v2, labels: {version: v2}}\n`);
    const w = i === 0 ? weightV1 : 90;
    docs.push(`apiVersion: weft/v1\nkind: Route\nmetadata: {name: svc-${i}}\nspec:\n  service: svc-${i}\n  rules:\n    - destinations:\n        - {subset: v1, weight: ${w}}\n        - {subset: v2, weight: ${100 - w}}\n`);
  }
  return docs.join('---\n');
}

function rssMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: Math.round(kb('VmRSS') / 1024), peak: Math.round(kb('VmHWM') / 1024) };
}

/** Established IPv4 connections to `port` on this machine (their client ends), from /proc/net/tcp. */
function establishedTo(port: number): number {
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).filter((line) => {
    const [, , remote, state] = line.trim().split(/\s+/);
    return state === '01' && remote !== undefined && parseInt(remote.split(':')[1]!, 16) === port;
  }).length;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-push-'));
const state = join(dir, 'state');
const config = join(dir, 'mesh.yaml');
writeFileSync(config, meshYaml(90));
// Through bin/weft, as a user starts it (its node flags included: --expose-gc for the settled collection).
const cpNodeArgs = process.env.BENCH_CP_NODE_ARGS ?? '';
const cpProc = spawn(join(REPO, 'bin/weft'), ['control-plane', '--config', config, '--state', state, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(cpNodeArgs ? { NODE_OPTIONS: cpNodeArgs } : {}), WEFT_MAX_CONNECTIONS_PER_CLIENT: String(SIDECARS * 16), ...(process.env.BENCH_CP_ENV ? Object.fromEntries(process.env.BENCH_CP_ENV.split(' ').map((kv) => kv.split('='))) : {}) } });
// The control plane's log: what the settled collection says (control-plane/heap-settle.ts).
let cpLog = '';
cpProc.stderr!.setEncoding('utf8').on('data', (d: string) => (cpLog = (cpLog + d).slice(-65536)));
const url = await new Promise<string>((resolve, reject) => {
  cpProc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const m = /listening on (\S+)/.exec(d);
    if (m) resolve(m[1]!);
  });
  cpProc.once('exit', (code) => reject(new Error(`control plane exited with ${code}`)));
});
const info = JSON.parse(readFileSync(join(state, 'control-plane.json'), 'utf8')) as { identity: string };
const ca = readFileSync(join(state, 'ca', 'bundle.pem'), 'utf8');
const conn = { url, ca, serverIdentity: info.identity };

try {
  // Certificates straight from the CA on disk: this benchmark is about push, not bootstrap.
  const authority = CaStore.open(join(state, 'ca')).authority();
  const stubs: StubSidecar[] = [];
  for (let i = 0; i < SIDECARS; i++) {
    const keys = generateKeyPair();
    const svc = `svc-${i % SERVICES}`;
    const svid = authority.sign(await csrFor(keys), `spiffe://bench.example/ns/default/sa/${svc}`);
    stubs.push(new StubSidecar({ ...conn, service: svc, labels: { version: i % 10 === 0 ? 'v2' : 'v1' }, address: `127.0.0.1:${20000 + i}`, reports: 'stream' }, { chain: svid.chainPem, key: privateKeyToPem(keys.privateKey), identity: svid.spiffeId.uri, serial: svid.serial, notAfter: svid.notAfter.toISOString() }));
  }
  const t0 = performance.now();
  // Heartbeats spread over the 5 s period, as those of sidecars started at different times are.
  const beats: NodeJS.Timeout[] = [];
  for (let i = 0; i < stubs.length; i += 50) {
    await Promise.all(stubs.slice(i, i + 50).map((s) => s.connect()));
    for (const s of stubs.slice(i, i + 50)) beats.push(setInterval(() => void s.heartbeat(), 5000));
  }
  // Wait until every sidecar sees every endpoint (registration churn has settled).
  await Promise.all(stubs.map((s) => s.waitFor((x) => x.body.upstreams.reduce((n, u) => n + u.endpoints.length, 0) === SIDECARS, 120_000)));
  const connectSeconds = (performance.now() - t0) / 1000;
  const idle = rssMb(cpProc.pid!);

  const op = new ControlPlaneClient({ ...conn, adminToken: readFileSync(join(state, 'admin-token'), 'utf8').trim() });
  const bytesBefore = stubs.reduce((n, s) => n + s.bytesReceived, 0);
  const start = performance.now();
  const arrivals = stubs.map((s) => s.waitFor((x) => x.body.upstreams[0]!.route?.rules[0]?.destinations[0]?.weight === 50, 60_000).then(() => performance.now() - start));
  const applied = await op.request<{ version: number }>('PUT', '/v1/config', meshYaml(50), { contentType: 'application/yaml' });
  const putMs = performance.now() - start;
  const times = (await Promise.all(arrivals)).sort((a, b) => a - b);
  const bytesPerSidecar = Math.round((stubs.reduce((n, s) => n + s.bytesReceived, 0) - bytesBefore) / SIDECARS);
  const after = rssMb(cpProc.pid!);
  const cpMem = (await op.request<{ controlPlane: { heapUsedMb: number; heapTotalMb: number; externalMb: number } }>('GET', '/v1/status')).controlPlane;
  const connections = establishedTo(Number(new URL(url).port));
  op.close();
  // Once the storm of connections has passed and the control plane is at rest with every sidecar connected
  // (heartbeats and ACKs only), it collects the storm's garbage: wait for that, up to BENCH_SETTLE_SECONDS.
  const settleStart = performance.now();
  let settledLine: { pauseMs: number } | undefined;
  while (!settledLine && performance.now() - settleStart < SETTLE_SECONDS * 1000) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const line = cpLog.split('\n').find((l) => l.includes('"msg":"settled: garbage collected"'));
    settledLine = line ? (JSON.parse(line) as { pauseMs: number }) : undefined;
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const settled = rssMb(cpProc.pid!);

  const result = {
    sidecars: SIDECARS,
    services: SERVICES,
    change: 'route weights of one service (90/10 -> 50/50)',
    applyMs: Math.round(putMs),
    version: applied.version,
    p50Ms: Math.round(pct(times, 50)),
    p99Ms: Math.round(pct(times, 99)),
    maxMs: Math.round(times.at(-1)!),
    bytesPerSidecar,
    rssMb: after.rss,
    rssIdleMb: idle.rss,
    rssPeakMb: after.peak,
    rssSettledMb: settled.rss,
    settledAfterSeconds: Math.round((performance.now() - settleStart) / 1000),
    settleCollectionMs: settledLine?.pauseMs ?? null,
    heapUsedMb: cpMem.heapUsedMb,
    heapTotalMb: cpMem.heapTotalMb,
    externalMb: cpMem.externalMb,
    connections,
    connectSeconds: Number(connectSeconds.toFixed(1)),
    goal: 'p99 < 1000 ms for 1,000 sidecars',
    node: process.version,
    date: new Date().toISOString(),
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/push.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
  console.log(`${SIDECARS} sidecars (${SERVICES} services): change reached p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms; ${bytesPerSidecar} bytes each`);
  console.log(`control plane RSS ${result.rssMb} MB (idle with all connected ${idle.rss} MB, peak ${after.peak} MB; V8 heap ${cpMem.heapTotalMb} MB, ${cpMem.heapUsedMb} in use); ${connections} connections to it; connecting took ${result.connectSeconds} s`);
  console.log(settledLine ? `settled: control plane RSS ${settled.rss} MB, ${result.settledAfterSeconds} s after the push (one collection, ${settledLine.pauseMs} ms)` : `not settled within ${SETTLE_SECONDS} s: control plane RSS ${settled.rss} MB`);
  console.log('written bench/results/push.json');
  for (const b of beats) clearInterval(b);
  for (const s of stubs) s.close();
} finally {
  cpProc.kill('SIGTERM');
}
