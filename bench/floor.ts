// bench (floor): the same two hops (plain HTTP in, mTLS between, plain HTTP to nginx) done four ways, each loaded
// in turn with wrk (32 connections, 3 s) and then hey at a fixed rate, the order reversed every other round:
//   haproxy      the reference pair (as npm run bench);
//   node-relay   the least a Node process can do: bytes relayed, one mTLS connection per connection in
//                (./proxy/node-relay.ts);
//   node-h1      the sidecar's HTTP/1 machinery alone: its server, relay and pools, without routing, policy,
//                telemetry or identity checks (./proxy/h1-relay.ts);
//   weft         the sidecar pair.
// It prints p50/p99 at the fixed rate and each process's main-thread CPU per request under both loads, which
// splits the sidecars' cost into Node's floor, HTTP handling and the mesh's own work.
// BENCH_ROUNDS (6), BENCH_SECONDS (10), BENCH_RATE (2000), BENCH_HEY_WORKERS (20). BENCH_PERF=DIR records one
// side of each pair (BENCH_PERF_SIDE: 1, the server side, or 0) with `perf record -g` during each load, into DIR
// (the Node relays then run with --perf-basic-prof; give the sidecars BENCH_SIDECAR_NODE_ARGS=--perf-basic-prof).
// Writes the medians to bench/results/floor.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Children, type Child } from './proxy/children.ts';
import { startHaproxyPair } from './proxy/haproxy.ts';
import { hey, wrk, type HeyResult } from './proxy/load.ts';
import { answers, freePorts, probe, waitUntil, type Target } from './proxy/loopback.ts';
import { mainThreadSched } from './proxy/proc-stats.ts';
import { APP_BODY, startNginx } from './proxy/nginx.ts';
import { findTools } from './proxy/tools.ts';
import { sidecarSupport, startWeftPair } from './proxy/weft.ts';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const ROUNDS = env('BENCH_ROUNDS', 6);
const SECONDS = env('BENCH_SECONDS', 10);
const RATE = env('BENCH_RATE', 2000);
const WORKERS = env('BENCH_HEY_WORKERS', 20);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const tools = findTools();
if ('missing' in tools) throw new Error(tools.missing);
const support = await sidecarSupport();
if ('missing' in support) throw new Error(support.missing);
const dir = mkdtempSync(join(tmpdir(), 'weft-bench-floor-'));
const children = new Children(dir);
/** `perf record` of one process of the setup for `seconds`, if BENCH_PERF names a directory. */
function record(s: Setup, name: string, seconds: number): Child | null {
  const out = process.env.BENCH_PERF;
  const proc = s.procs[Number(process.env.BENCH_PERF_SIDE ?? 1)];
  if (!out || !proc) return null;
  return children.start(`perf-${name}`, 'perf', ['record', '-F', '2999', '-g', '-p', String(proc.pid), '-o', join(out, `${name}.data`), '--', 'sleep', String(seconds)]);
}
const ended = (c: Child | null) => new Promise((r) => (!c || c.proc.exitCode !== null ? r(null) : c.proc.once('exit', r)));
interface Setup { name: string; target: Target; procs: Child[]; results: HeyResult[]; cpu: number[][]; wrk: { rps: number; cpu: number[] }[] }
try {
  const p = await freePorts(16);
  const nginx = startNginx(children, tools.paths.nginx!, dir, p[0]!);
  await waitUntil('nginx', answers({ url: `http://127.0.0.1:${p[0]}/` }, APP_BODY), [nginx]);
  const hap = await startHaproxyPair(children, tools.paths.haproxy!, dir, { front: p[1]!, tls: p[2]!, app: p[0]! });
  const relayScript = fileURLToPath(new URL('./proxy/node-relay.ts', import.meta.url));
  const certs = join(dir, 'haproxy');
  const h1Script = fileURLToPath(new URL('./proxy/h1-relay.ts', import.meta.url));
  // With the sidecars' heap settings (bin/weft), so that they differ from the sidecars only in what runs per request.
  const flags = ['--max-semi-space-size=4', '--no-parallel-scavenge', ...(process.env.BENCH_PERF ? ['--perf-basic-prof'] : [])];
  const rServer = children.start('relay-server', process.execPath, [...flags, relayScript, 'server', String(p[4]), String(p[0]), certs]);
  const rClient = children.start('relay-client', process.execPath, [...flags, relayScript, 'client', String(p[3]), String(p[4]), certs]);
  const hServer = children.start('h1-server', process.execPath, [...flags, h1Script, 'server', String(p[14]), String(p[0]), certs]);
  const hClient = children.start('h1-client', process.execPath, [...flags, h1Script, 'client', String(p[13]), String(p[14]), certs]);
  const weft = await startWeftPair(children, dir, { app: p[0]!, clientApp: p[5]!, upstream: p[6]!, client: { inbound: p[7]!, outbound: p[8]!, admin: p[9]! }, server: { inbound: p[10]!, outbound: p[11]!, admin: p[12]! } }, support);
  for (const url of Object.values(weft.admin)) await waitUntil(url, async () => ((await probe({ url }))?.status === 200 ? true : 'not ready'), [weft.client, weft.server]);
  const setups: Setup[] = [
    { name: 'haproxy', target: { url: `http://127.0.0.1:${p[1]}/` }, procs: [hap.client, hap.server], results: [], cpu: [], wrk: [] },
    { name: 'node-relay', target: { url: `http://127.0.0.1:${p[3]}/` }, procs: [rClient, rServer], results: [], cpu: [], wrk: [] },
    { name: 'node-h1', target: { url: `http://127.0.0.1:${p[13]}/` }, procs: [hClient, hServer], results: [], cpu: [], wrk: [] },
    { name: 'weft', target: weft.target, procs: [weft.client, weft.server], results: [], cpu: [], wrk: [] },
  ];
  for (const s of setups) await waitUntil(s.name, answers(s.target, APP_BODY), s.procs);
  const direct = { name: 'direct', target: { url: `http://127.0.0.1:${p[0]}/` }, procs: [], results: [], cpu: [], wrk: [] } as Setup;
  const all = [direct, ...setups];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? all : [...all].reverse();
    const line: string[] = [];
    for (const s of order) {
      const w0 = s.procs.map((c) => mainThreadSched(c.pid).cpuNs);
      const wperf = record(s, `${s.name}-wrk-${round}`, 2);
      const w = await wrk(children, tools.paths.wrk!, s.target, { connections: 32, threads: 1, seconds: 3 });
      const wcpu = s.procs.map((c, i) => (mainThreadSched(c.pid).cpuNs - w0[i]!) / w.requests / 1e3);
      s.wrk.push({ rps: w.rps, cpu: wcpu });
      await ended(wperf);
      const before = s.procs.map((c) => mainThreadSched(c.pid).cpuNs);
      const perf = record(s, `${s.name}-${round}`, SECONDS - 2);
      const h = await hey(children, tools.paths.hey!, s.target, { rate: RATE, workers: WORKERS, seconds: SECONDS });
      await ended(perf);
      const cpu = s.procs.map((c, i) => (mainThreadSched(c.pid).cpuNs - before[i]!) / h.requests / 1e3);
      s.results.push(h);
      s.cpu.push(cpu);
      line.push(`${s.name} p50 ${h.p50Ms.toFixed(1)} p99 ${h.p99Ms.toFixed(1)} cpu ${cpu.map((c) => c.toFixed(1)).join('+')}`);
    }
    console.log(`round ${round}: ${line.join('  ')}`);
  }
  const result: Record<string, unknown> = { rounds: ROUNDS, rate: RATE, heyWorkers: WORKERS, setups: {} };
  const round1 = (x: number) => Math.round(x * 10) / 10;
  for (const s of all) {
    const r = s.results;
    const cpu = s.procs.map((_, i) => round1(median(s.cpu.map((c) => c[i]!))));
    const wcpu = s.procs.map((_, i) => round1(median(s.wrk.map((c) => c.cpu[i]!))));
    const rps = median(s.wrk.map((w) => w.rps));
    const p50 = median(r.map((x) => x.p50Ms));
    const p99 = median(r.map((x) => x.p99Ms));
    console.log(`${s.name}: wrk ${rps.toFixed(0)} requests/s, CPU per request ${wcpu.join(' + ') || '-'} µs`);
    console.log(`${s.name}: at ${RATE}/s median p50 ${p50.toFixed(2)} p99 ${p99.toFixed(2)} ms; CPU per request ${cpu.join(' + ') || '-'} µs`);
    (result.setups as Record<string, unknown>)[s.name] = { wrkRps: rps, wrkCpuUsPerRequest: wcpu, p50Ms: p50, p99Ms: p99, atRateCpuUsPerRequest: cpu };
  }
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/floor.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
  console.log('written bench/results/floor.json');
} finally {
  await children.stopAll();
  if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
}
