// bench (floor): the same two hops done by haproxy, by a raw Node byte relay (bench/proxy/node-relay.ts) and by
// the Weft sidecars, hey at a fixed rate on each in turn. Shows how much of the sidecars' cost per request is
// Node's own floor. BENCH_ROUNDS (6), BENCH_SECONDS (10), BENCH_RATE (2000), BENCH_HEY_WORKERS (20);
// BENCH_PERF=DIR records each server-side process with `perf record -g` during each hey run, into DIR (the relay
// then runs with --perf-basic-prof; give the sidecars BENCH_SIDECAR_NODE_ARGS=--perf-basic-prof). Writes nothing else.
import { mkdtempSync, rmSync } from 'node:fs';
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
interface Setup { name: string; target: Target; procs: Child[]; results: HeyResult[]; cpu: number[][] }
try {
  const p = await freePorts(16);
  const nginx = startNginx(children, tools.paths.nginx!, dir, p[0]!);
  await waitUntil('nginx', answers({ url: `http://127.0.0.1:${p[0]}/` }, APP_BODY), [nginx]);
  const hap = await startHaproxyPair(children, tools.paths.haproxy!, dir, { front: p[1]!, tls: p[2]!, app: p[0]! });
  const relayScript = fileURLToPath(new URL('./proxy/node-relay.ts', import.meta.url));
  const certs = join(dir, 'haproxy');
  const rServer = children.start('relay-server', process.execPath, [...(process.env.BENCH_PERF ? ['--perf-basic-prof'] : []), relayScript, 'server', String(p[4]), String(p[0]), certs]);
  const rClient = children.start('relay-client', process.execPath, [relayScript, 'client', String(p[3]), String(p[4]), certs]);
  const weft = await startWeftPair(children, dir, { app: p[0]!, clientApp: p[5]!, upstream: p[6]!, client: { inbound: p[7]!, outbound: p[8]!, admin: p[9]! }, server: { inbound: p[10]!, outbound: p[11]!, admin: p[12]! } }, support);
  for (const url of Object.values(weft.admin)) await waitUntil(url, async () => ((await probe({ url }))?.status === 200 ? true : 'not ready'), [weft.client, weft.server]);
  const setups: Setup[] = [
    { name: 'haproxy', target: { url: `http://127.0.0.1:${p[1]}/` }, procs: [hap.client, hap.server], results: [], cpu: [] },
    { name: 'node-relay', target: { url: `http://127.0.0.1:${p[3]}/` }, procs: [rClient, rServer], results: [], cpu: [] },
    { name: 'weft', target: weft.target, procs: [weft.client, weft.server], results: [], cpu: [] },
  ];
  for (const s of setups) await waitUntil(s.name, answers(s.target, APP_BODY), s.procs);
  const direct = { name: 'direct', target: { url: `http://127.0.0.1:${p[0]}/` }, procs: [], results: [], cpu: [] } as Setup;
  const all = [direct, ...setups];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? all : [...all].reverse();
    const line: string[] = [];
    for (const s of order) {
      await wrk(children, tools.paths.wrk!, s.target, { connections: 32, threads: 1, seconds: 3 });
      const before = s.procs.map((c) => mainThreadSched(c.pid).cpuNs);
      const perf = process.env.BENCH_PERF && s.procs.length ? children.start(`perf-${s.name}-${round}`, 'perf', ['record', '-F', '2999', '-g', '-p', String(s.procs[1]!.pid), '-o', join(process.env.BENCH_PERF, `${s.name}-${round}.data`), '--', 'sleep', String(SECONDS - 2)]) : null;
      const h = await hey(children, tools.paths.hey!, s.target, { rate: RATE, workers: WORKERS, seconds: SECONDS });
      if (perf) await new Promise((r) => (perf.proc.exitCode !== null ? r(null) : perf.proc.once('exit', r)));
      const cpu = s.procs.map((c, i) => (mainThreadSched(c.pid).cpuNs - before[i]!) / h.requests / 1e3);
      s.results.push(h);
      s.cpu.push(cpu);
      line.push(`${s.name} p50 ${h.p50Ms.toFixed(1)} p99 ${h.p99Ms.toFixed(1)} cpu ${cpu.map((c) => c.toFixed(1)).join('+')}`);
    }
    console.log(`round ${round}: ${line.join('  ')}`);
  }
  for (const s of all) {
    const r = s.results;
    const cpu = s.procs.map((_, i) => median(s.cpu.map((c) => c[i]!)).toFixed(1)).join(' + ');
    console.log(`${s.name}: median p50 ${median(r.map((x) => x.p50Ms)).toFixed(2)} p99 ${median(r.map((x) => x.p99Ms)).toFixed(2)} ms; CPU per request ${cpu || '-'} µs`);
  }
} finally {
  await children.stopAll();
  if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
}
