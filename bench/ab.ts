// bench (A/B) — two or more builds of the sidecar pair's environment, measured against each other in one run: the
// same nginx behind pair A, pair B (and C, D, ... if given), hey at a fixed rate on each in turn (order reversed
// every other round), so that what the machine does meanwhile hits all alike. For a change whose effect is smaller
// than the run-to-run noise of `npm run bench` (single rounds vary by ±0.5 ms at p99).
//
// BENCH_AB_A and BENCH_AB_B (and BENCH_AB_C, ...): environment assignments for each pair's sidecars, space-separated
// (e.g. BENCH_AB_B='WEFT_IDLE_SCAVENGE=0'); each is compared with A. BENCH_ROUNDS (8), BENCH_SECONDS (10), BENCH_RATE (2000),
// BENCH_HEY_WORKERS (20), BENCH_WRK (1: a 5 s wrk run before each round, as npm run bench does).
// Prints each round, the medians and each pair's peak RSS (client / server side); writes nothing.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Children } from './proxy/children.ts';
import { hey, wrk, type HeyResult } from './proxy/load.ts';
import { answers, freePorts, probe, waitUntil } from './proxy/loopback.ts';
import { mainThreadSched, rss } from './proxy/proc-stats.ts';
import { APP_BODY, startNginx } from './proxy/nginx.ts';
import { findTools } from './proxy/tools.ts';
import { sidecarSupport, startWeftPair, type WeftPair } from './proxy/weft.ts';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const ROUNDS = env('BENCH_ROUNDS', 8);
const SECONDS = env('BENCH_SECONDS', 10);
const RATE = env('BENCH_RATE', 2000);
const WORKERS = env('BENCH_HEY_WORKERS', 20);
const WRK = env('BENCH_WRK', 1) === 1;

function assignments(name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of (process.env[name] ?? '').split(' ').filter(Boolean)) {
    const eq = word.indexOf('=');
    if (eq <= 0) {
      console.error(`${name}: '${word}' is not NAME=value`);
      process.exit(2);
    }
    out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const tools = findTools();
if ('missing' in tools) {
  console.error(tools.missing);
  process.exit(1);
}
const support = await sidecarSupport();
if ('missing' in support) {
  console.error(support.missing);
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-ab-'));
const children = new Children(dir);
const pairChildren: Children[] = [];
// A and B always; C, D, ... as far as they are given, in order.
const NAMES = ['A', 'B', ...'CDEFGH'.split('').filter((_, i, all) => all.slice(0, i + 1).every((n) => process.env[`BENCH_AB_${n}`] !== undefined))];
const pairs: Record<string, { pair: WeftPair; env: Record<string, string>; results: HeyResult[]; cpuUs: number[] }> = {};
try {
  const [app, clientApp, ...rest] = await freePorts(2 + NAMES.length * 7);
  const nginx = startNginx(children, tools.paths.nginx!, dir, app!);
  await waitUntil('nginx', answers({ url: `http://127.0.0.1:${app}/` }, APP_BODY), [nginx]);
  for (const [i, name] of NAMES.entries()) {
    const [upstream, ci, co, ca, si, so, sa] = rest.slice(i * 7, i * 7 + 7) as [number, number, number, number, number, number, number];
    const extra = assignments(`BENCH_AB_${name}`);
    // startWeftPair starts its processes with this process's environment.
    const saved = Object.fromEntries(Object.keys(extra).map((k) => [k, process.env[k]]));
    Object.assign(process.env, extra);
    const home = join(dir, name);
    mkdirSync(home);
    let pair: WeftPair;
    try {
      const own = new Children(home);
      pairChildren.push(own);
      pair = await startWeftPair(own, home, { app: app!, clientApp: clientApp!, upstream, client: { inbound: ci, outbound: co, admin: ca }, server: { inbound: si, outbound: so, admin: sa } }, support);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    const watched = [pair.controlPlane, pair.client, pair.server, nginx];
    for (const url of Object.values(pair.admin)) await waitUntil(`pair ${name} ${url}`, async () => ((await probe({ url }))?.status === 200 ? true : 'not ready'), watched);
    await waitUntil(`pair ${name}`, answers(pair.target, APP_BODY), watched);
    pairs[name] = { pair, env: extra, results: [], cpuUs: [] };
  }
  console.log(`${NAMES.map((n) => `${n}: ${JSON.stringify(pairs[n]!.env)}`).join('  ')}; ${ROUNDS} rounds, hey ${RATE}/s (${WORKERS} workers) ${SECONDS} s each`);
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? NAMES : [...NAMES].reverse();
    const line: string[] = [];
    for (const name of order) {
      const p = pairs[name]!;
      if (WRK) await wrk(children, tools.paths.wrk!, p.pair.target, { connections: 32, threads: 1, seconds: 5 });
      const before = [p.pair.client, p.pair.server].map((c) => mainThreadSched(c.pid).cpuNs);
      const h = await hey(children, tools.paths.hey!, p.pair.target, { rate: RATE, workers: WORKERS, seconds: SECONDS });
      // The pair's main threads' CPU per request during the hey run: steadier than latency on a busy machine.
      const cpuUs = [p.pair.client, p.pair.server].reduce((n, c, i) => n + mainThreadSched(c.pid).cpuNs - before[i]!, 0) / h.requests / 1e3;
      p.results.push(h);
      p.cpuUs.push(cpuUs);
      line.push(`${name} p50 ${h.p50Ms.toFixed(1)} p90 ${h.p90Ms.toFixed(1)} p99 ${h.p99Ms.toFixed(1)} cpu ${cpuUs.toFixed(1)} µs${h.errors ? ` (${h.errors} errors)` : ''}`);
    }
    console.log(`  round ${round}: ${line.join('   ')}`);
  }
  for (const name of NAMES) {
    const r = pairs[name]!.results;
    const peak = [pairs[name]!.pair.client, pairs[name]!.pair.server].map((c) => rss(c.pid).peakMb).join(' / ');
    console.log(`${name}: median p50 ${median(r.map((x) => x.p50Ms)).toFixed(2)}  p90 ${median(r.map((x) => x.p90Ms)).toFixed(2)}  p99 ${median(r.map((x) => x.p99Ms)).toFixed(2)} ms; CPU per request, both sidecars ${median(pairs[name]!.cpuUs).toFixed(1)} µs; peak RSS ${peak} MB`);
  }
  const a = pairs.A!;
  for (const name of NAMES.slice(1)) {
    const wins = a.results.filter((x, i) => pairs[name]!.results[i]!.p99Ms < x.p99Ms).length;
    const cheaper = a.cpuUs.filter((x, i) => pairs[name]!.cpuUs[i]! < x).length;
    console.log(`${name}'s p99 below A's in ${wins} of ${ROUNDS} rounds; ${name}'s CPU per request below A's in ${cheaper}`);
  }
} finally {
  for (const c of pairChildren) await c.stopAll();
  await children.stopAll();
  if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
}
