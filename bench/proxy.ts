// bench (proxy) — the data plane against a peer: the app alone, behind a pair of Weft sidecars, and behind a pair
// of haproxy processes doing the same two hops (plain HTTP in, mTLS between, plain HTTP to the app), in one run.
//
// The app is nginx answering "ok\n". All setups are started first; then, in BENCH_ROUNDS rounds, each setup in
// turn gets the load alone, warmed up first: wrk with 32 connections measures throughput, then hey at a fixed
// 2,000 requests/s measures latency. Figures are medians over the rounds, and the throughput ratio the median
// of each round's ratio, so drift in what else the machine does hits both pairs alike. The server-side proxy's
// RSS is read from /proc idle (ready, before any load) and at its peak over all rounds. Everything is on
// 127.0.0.1. Writes bench/results/proxy.json when all three setups ran.
//
// Env: BENCH_ROUNDS (3), BENCH_SECONDS (each wrk and hey run, default 10), BENCH_WARMUP_SECONDS (2), BENCH_CONNECTIONS (32),
// BENCH_RATE (2000), BENCH_HEY_WORKERS (20), BENCH_WRK_THREADS (1), BENCH_SETUPS (direct,haproxy,weft),
// BENCH_SIDECAR_NODE_ARGS (e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'), BENCH_KEEP=1 keeps the temp dir,
// BENCH_MAX_FOREIGN_CPU (10: a run during which other programs took more than this % of the CPUs is repeated,
// up to BENCH_MAX_ATTEMPTS, 3, keeping the quietest).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Children, exited, logTail, type Child } from './proxy/children.ts';
import { startHaproxyPair } from './proxy/haproxy.ts';
import { hey, wrk, type HeyResult, type WrkResult } from './proxy/load.ts';
import { answers, freePorts, probe, waitUntil, type Target } from './proxy/loopback.ts';
import { APP_BODY, startNginx } from './proxy/nginx.ts';
import { cpuSeconds, machineBusyPercent, mainThreadSched, rss, sampleRss, watchForeignCpu, type Rss } from './proxy/proc-stats.ts';
import { codeRevision, findTools, toolVersions } from './proxy/tools.ts';
import { sidecarSupport, startWeftPair, type SidecarSupport } from './proxy/weft.ts';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const ROUNDS = env('BENCH_ROUNDS', 3);
const SECONDS = env('BENCH_SECONDS', 10);
const WARMUP_SECONDS = env('BENCH_WARMUP_SECONDS', 2);
const CONNECTIONS = env('BENCH_CONNECTIONS', 32);
const RATE = env('BENCH_RATE', 2000);
const HEY_WORKERS = env('BENCH_HEY_WORKERS', 20);
// One wrk thread: the load generator shares the two cores with the proxies, so it should take as little as it can.
const WRK_THREADS = env('BENCH_WRK_THREADS', 1);
const SETUP_NAMES = ['direct', 'haproxy', 'weft'] as const;
type SetupName = (typeof SETUP_NAMES)[number];
const SELECTED = (process.env.BENCH_SETUPS ?? SETUP_NAMES.join(',')).split(',').map((s) => s.trim()) as SetupName[];
// A run during which other programs took more than this share of the CPUs is measured again, up to MAX_ATTEMPTS.
const MAX_FOREIGN_CPU = env('BENCH_MAX_FOREIGN_CPU', 10);
const MAX_ATTEMPTS = env('BENCH_MAX_ATTEMPTS', 3);
const GOALS = { throughputRatio: 0.6, addedP99Ms: 2, rssIdleMb: 64, rssLoadMb: 100 };

for (const s of SELECTED) {
  if (!SETUP_NAMES.includes(s)) {
    console.error(`BENCH_SETUPS: unknown setup '${s}'; choose from ${SETUP_NAMES.join(', ')}`);
    process.exit(2);
  }
}

/** A setup under test: where the load goes, and the proxy processes to measure (none for the app alone). */
interface Running {
  readonly target: Target;
  readonly proxies?: { readonly client: Child; readonly server: Child };
  /** other processes of the setup (the control plane), whose CPU is ours, not foreign */
  readonly others: readonly Child[];
  stop(): Promise<void>;
}

interface ProxyCost {
  /** CPU time per request during the wrk run, µs */
  readonly cpuUsPerRequest: number;
  /** medians over the rounds, during the hey run: see RoundFigures.atRate */
  readonly atRate: { readonly cpuUs: number; readonly waitUs: number; readonly preempted: number; readonly wakeups: number };
  readonly rssIdleMb: number;
  /** VmHWM after the wrk run: the peak since start, so under load unless start-up was higher (see rssIdlePeakMb) */
  readonly rssLoadMb: number;
  /** VmHWM while idle */
  readonly rssIdlePeakMb: number;
  /** the largest VmRSS sampled every 100 ms during the wrk run */
  readonly rssLoadSampledMb: number;
}

interface Measured {
  /** wrk, CONNECTIONS connections */
  readonly rps: number;
  /** hey at RATE requests/s */
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly wrk: WrkResult;
  readonly hey: HeyResult;
  readonly client?: ProxyCost;
  readonly server?: ProxyCost;
  /** CPU used by anything else on the machine during the kept attempt, % of all CPUs */
  readonly foreignCpuPercent: number;
  readonly attempts: number;
  /** each round's figures, in order (the top-level ones are their medians) */
  readonly rounds: readonly RoundFigures[];
}

interface RoundFigures {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** client side, server side */
  readonly cpuUsPerRequest: readonly number[];
  /** during the hey run, per request, each proxy's main thread: CPU µs, µs runnable but waiting, times preempted, times woken */
  readonly atRate: readonly { cpuUs: number; waitUs: number; preempted: number; wakeups: number }[];
  readonly foreignCpuPercent: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const r2 = (x: number) => Math.round(x * 100) / 100;
function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One warm-up, wrk and hey round, with the CPU the proxies spent during wrk and what anything else spent. */
async function loadRound(running: Running, procs: readonly Child[], allPids: readonly number[], paths: { wrk: string; hey: string }) {
  await wrk(children, paths.wrk, running.target, { connections: CONNECTIONS, threads: WRK_THREADS, seconds: WARMUP_SECONDS });
  const cpuBefore = procs.map((p) => cpuSeconds(p.pid));
  const samplers = procs.map((p) => sampleRss(p.pid));
  let foreign = watchForeignCpu(allPids);
  const w = await wrk(children, paths.wrk, running.target, { connections: CONNECTIONS, threads: WRK_THREADS, seconds: SECONDS });
  const foreignWrk = foreign.stop();
  const sampled = samplers.map((s) => s.stop());
  const cpuUsPerRequest = procs.map((p, i) => r2(((cpuSeconds(p.pid) - cpuBefore[i]!) / w.requests) * 1e6));
  foreign = watchForeignCpu(allPids);
  const sched = procs.map((p) => mainThreadSched(p.pid));
  const h = await hey(children, paths.hey, running.target, { rate: RATE, workers: HEY_WORKERS, seconds: SECONDS });
  const atRate = procs.map((p, i) => {
    const [a, b] = [sched[i]!, mainThreadSched(p.pid)];
    return { cpuUs: r2((b.cpuNs - a.cpuNs) / h.requests / 1e3), waitUs: r2((b.waitNs - a.waitNs) / h.requests / 1e3), preempted: r2((b.preempted - a.preempted) / h.requests), wakeups: r2((b.slept - a.slept) / h.requests) };
  });
  return { w, h, sampled, cpuUsPerRequest, atRate, foreign: Math.max(foreignWrk, foreign.stop()) };
}

type Round = Awaited<ReturnType<typeof loadRound>>;

/** One round of a setup; another program busy on the machine skews it against the others: repeat, keep the quietest. */
async function quietRound(label: string, running: Running, app: Child, paths: { wrk: string; hey: string }): Promise<{ round: Round; attempts: number }> {
  const procs = running.proxies ? [running.proxies.client, running.proxies.server] : [];
  const allPids = [app, ...procs, ...running.others].map((c) => c.pid);
  let best = await loadRound(running, procs, allPids, paths);
  let attempts = 1;
  while (best.foreign > MAX_FOREIGN_CPU && attempts < MAX_ATTEMPTS) {
    console.warn(`  ${label}: ${best.foreign}% of the CPUs went to other programs during the run; measuring again`);
    const again = await loadRound(running, procs, allPids, paths);
    attempts++;
    if (again.foreign < best.foreign) best = again;
  }
  if (best.foreign > MAX_FOREIGN_CPU) console.warn(`  warning: ${label}: other programs used ${best.foreign}% of the CPUs during the run kept; its figures are noisy`);
  const dead = [app, ...procs, ...running.others].find(exited);
  if (dead) throw new Error(`${label}: ${dead.name} exited during the run; its log (${dead.log}):\n${logTail(dead)}`);
  for (const [tool, errors, total] of [['wrk', best.w.errors, best.w.requests], ['hey', best.h.errors, best.h.requests]] as const) {
    if (errors > 0) console.warn(`  warning: ${label}: ${errors} of ${total} ${tool} requests failed or were not 200`);
  }
  return { round: best, attempts };
}

/** Medians over the rounds; memory from before the first round (idle) and after the last (peak). */
function summarize(running: Running, idle: readonly Rss[], rounds: readonly { round: Round; attempts: number }[]): Measured {
  const procs = running.proxies ? [running.proxies.client, running.proxies.server] : [];
  const figures: RoundFigures[] = rounds.map(({ round }) => ({ rps: Math.round(round.w.rps), p50Ms: r2(round.h.p50Ms), p99Ms: r2(round.h.p99Ms), cpuUsPerRequest: round.cpuUsPerRequest, atRate: round.atRate, foreignCpuPercent: round.foreign }));
  const rps = median(figures.map((f) => f.rps));
  // The round whose throughput is the median one gives the raw wrk and hey output kept in the results.
  const typical = rounds[figures.findIndex((f) => f.rps === rps)]?.round ?? rounds[0]!.round;
  const cost = procs.map((p, i): ProxyCost => ({
    cpuUsPerRequest: r2(median(figures.map((f) => f.cpuUsPerRequest[i]!))),
    atRate: { cpuUs: r2(median(figures.map((f) => f.atRate[i]!.cpuUs))), waitUs: r2(median(figures.map((f) => f.atRate[i]!.waitUs))), preempted: r2(median(figures.map((f) => f.atRate[i]!.preempted))), wakeups: r2(median(figures.map((f) => f.atRate[i]!.wakeups))) },
    rssIdleMb: idle[i]!.rssMb,
    rssIdlePeakMb: idle[i]!.peakMb,
    rssLoadMb: rss(p.pid).peakMb,
    rssLoadSampledMb: Math.max(...rounds.map(({ round }) => round.sampled[i]!)),
  }));
  return {
    rps: Math.round(rps),
    p50Ms: r2(median(figures.map((f) => f.p50Ms))),
    p90Ms: r2(typical.h.p90Ms),
    p99Ms: r2(median(figures.map((f) => f.p99Ms))),
    wrk: typical.w,
    hey: typical.h,
    client: cost[0],
    server: cost[1],
    foreignCpuPercent: Math.max(...figures.map((f) => f.foreignCpuPercent)),
    attempts: rounds.reduce((n, r) => n + r.attempts, 0),
    rounds: figures,
  };
}

function row(label: string, m: Measured): string {
  const server = m.server ? `  ${m.server.rssIdleMb} / ${m.server.rssLoadMb} MB, ${m.client!.cpuUsPerRequest} + ${m.server.cpuUsPerRequest} µs CPU/req` : '';
  const atRate = m.server ? `\n${' '.repeat(22)}at ${RATE} rps, per request, client + server: CPU ${m.client!.atRate.cpuUs} + ${m.server.atRate.cpuUs} µs, waiting for a CPU ${m.client!.atRate.waitUs} + ${m.server.atRate.waitUs} µs, preempted ${m.client!.atRate.preempted} + ${m.server.atRate.preempted} times, woken ${m.client!.atRate.wakeups} + ${m.server.atRate.wakeups} times` : '';
  return `${label.padEnd(20)} ${String(m.rps).padStart(7)} rps   p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms  (at ${Math.round(m.hey.rps)} rps)${server}${m.foreignCpuPercent > 2 ? `  [others used ${m.foreignCpuPercent}% CPU]` : ''}${atRate}`;
}

const tools = findTools();
if ('missing' in tools) {
  console.error(tools.missing);
  process.exit(1);
}
let support: SidecarSupport | undefined;
if (SELECTED.includes('weft')) {
  const s = await sidecarSupport();
  if ('missing' in s) {
    console.error(`${s.missing}\nTo measure the app alone and the haproxy pair meanwhile: BENCH_SETUPS=direct,haproxy npm run bench`);
    process.exit(1);
  }
  support = s;
}

// The setups share the machine's cores with the load generators; anything else running skews the ratios.
const busyBefore = await machineBusyPercent();
if (busyBefore > 10) console.warn(`warning: ${busyBefore}% of the CPUs were busy before the benchmark started; its figures will be noisy`);

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-proxy-'));
const children = new Children(dir);
const results: Partial<Record<SetupName, Measured>> = {};
let failed = false;
try {
  const [app, front, tls, clientApp, upstream, ...sidecarPorts] = await freePorts(11);
  const direct: Target = { url: `http://127.0.0.1:${app}/` };
  const nginx = startNginx(children, tools.paths.nginx!, dir, app!);
  await waitUntil('nginx', answers(direct, APP_BODY), [nginx]);

  const setups: Record<SetupName, { label: string; start(): Promise<Running> }> = {
    direct: { label: 'app alone', start: async () => ({ target: direct, others: [], stop: async () => {} }) },
    haproxy: {
      label: 'haproxy pair',
      async start() {
        const pair = await startHaproxyPair(children, tools.paths.haproxy!, dir, { front: front!, tls: tls!, app: app! });
        const target = { url: `http://127.0.0.1:${front}/` };
        await waitUntil('haproxy pair', answers(target, APP_BODY), [pair.client, pair.server, nginx]);
        return { target, proxies: pair, others: [], stop: () => Promise.all([children.stop(pair.client), children.stop(pair.server)]).then(() => {}) };
      },
    },
    weft: {
      label: 'Weft sidecar pair',
      async start() {
        const [ci, co, ca, si, so, sa] = sidecarPorts as [number, number, number, number, number, number];
        const pair = await startWeftPair(children, dir, { app: app!, clientApp: clientApp!, upstream: upstream!, client: { inbound: ci, outbound: co, admin: ca }, server: { inbound: si, outbound: so, admin: sa } }, support!);
        const watched = [pair.controlPlane, pair.client, pair.server, nginx];
        for (const [side, url] of Object.entries(pair.admin)) {
          await waitUntil(`sidecar ${side} /ready`, async () => ((await probe({ url }))?.status === 200 ? true : `${url} is not 200 yet`), watched);
        }
        // Ready is not enough: the client side must also have the server side's endpoint from the control plane.
        await waitUntil('Weft sidecar pair', answers(pair.target, APP_BODY), watched);
        return {
          target: pair.target,
          proxies: { client: pair.client, server: pair.server },
          others: [pair.controlPlane],
          stop: () => Promise.all([children.stop(pair.client), children.stop(pair.server)]).then(() => children.stop(pair.controlPlane)),
        };
      },
    },
  };

  console.log(`load: ${ROUNDS} rounds of each setup in turn; wrk ${CONNECTIONS} connections (${WRK_THREADS} thread) ${SECONDS} s after ${WARMUP_SECONDS} s warm-up; hey ${RATE} requests/s (${HEY_WORKERS} workers × -q ${RATE / HEY_WORKERS}) ${SECONDS} s`);
  const running: Partial<Record<SetupName, Running>> = {};
  const idle: Partial<Record<SetupName, Rss[]>> = {};
  const rounds: Partial<Record<SetupName, { round: Round; attempts: number }[]>> = {};
  try {
    for (const name of SELECTED) {
      const r = (running[name] = await setups[name].start());
      await sleep(1000); // let start-up work (JIT, GC, the first snapshot) settle before calling it idle
      idle[name] = r.proxies ? [rss(r.proxies.client.pid), rss(r.proxies.server.pid)] : [];
      rounds[name] = [];
    }
    for (let n = 1; n <= ROUNDS; n++) {
      for (const name of SELECTED) {
        const got = await quietRound(setups[name].label, running[name]!, nginx, { wrk: tools.paths.wrk!, hey: tools.paths.hey! });
        rounds[name]!.push(got);
        console.log(`  round ${n} ${setups[name].label.padEnd(18)} ${String(Math.round(got.round.w.rps)).padStart(7)} rps   p50 ${got.round.h.p50Ms.toFixed(2)} ms  p99 ${got.round.h.p99Ms.toFixed(2)} ms`);
      }
    }
    console.log('medians:');
    for (const name of SELECTED) {
      results[name] = summarize(running[name]!, idle[name]!, rounds[name]!);
      console.log(row(setups[name].label, results[name]!));
    }
  } finally {
    for (const r of Object.values(running)) await r.stop();
  }
} catch (err) {
  failed = true;
  console.error(`bench failed: ${(err as Error).message}\n(logs kept in ${dir})`);
  process.exitCode = 1;
} finally {
  await children.stopAll();
  if (!failed && !process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
}

const { direct, haproxy, weft } = results;
if (!failed && direct && haproxy && weft) {
  const result = {
    // each round's ratio, then their median: both pairs of a round ran minutes apart at most
    throughputRatio: Math.round(median(weft.rounds.map((w, i) => w.rps / haproxy.rounds[i]!.rps)) * 1000) / 1000,
    addedP50Ms: r2(weft.p50Ms - direct.p50Ms),
    addedP99Ms: r2(weft.p99Ms - direct.p99Ms),
    haproxyAddedP50Ms: r2(haproxy.p50Ms - direct.p50Ms),
    haproxyAddedP99Ms: r2(haproxy.p99Ms - direct.p99Ms),
    rssIdleMb: weft.server!.rssIdleMb,
    rssLoadMb: weft.server!.rssLoadMb,
    goals: { throughputRatio: `>= ${GOALS.throughputRatio}`, addedP99Ms: `<= ${GOALS.addedP99Ms}`, rssIdleMb: `<= ${GOALS.rssIdleMb}`, rssLoadMb: `<= ${GOALS.rssLoadMb}` },
    met: {} as Record<keyof typeof GOALS, boolean>,
    /** false when another program took more than BENCH_MAX_FOREIGN_CPU % of the CPUs during a kept run */
    quietMachine: [direct, haproxy, weft].every((m) => m.foreignCpuPercent <= MAX_FOREIGN_CPU),
    setups: { direct, haproxy, weft },
    load: {
      rounds: ROUNDS,
      wrk: { connections: CONNECTIONS, threads: WRK_THREADS, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS },
      hey: { ratePerSecond: RATE, workers: HEY_WORKERS, qPerWorker: RATE / HEY_WORKERS, seconds: SECONDS, latencyResolutionMs: 0.1 },
      app: `nginx, one process, return 200 ${JSON.stringify(APP_BODY)}`,
      haproxy: 'one process each, nbthread 1, TLS 1.3 mTLS between, keep-alive',
      weft: support!.upstreamFlag ? 'two sidecar processes; load on the client side\'s --upstream server=PORT' : 'two sidecar processes; load on the client side\'s outbound port with Host: server',
    },
    code: codeRevision(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), memoryGb: Math.round(totalmem() / 2 ** 30), kernel: release(), node: process.version, cpuBusyBeforePercent: busyBefore, packages: toolVersions() },
    date: new Date().toISOString(),
  };
  result.met = {
    throughputRatio: result.throughputRatio >= GOALS.throughputRatio,
    addedP99Ms: result.addedP99Ms <= GOALS.addedP99Ms,
    rssIdleMb: result.rssIdleMb <= GOALS.rssIdleMb,
    rssLoadMb: result.rssLoadMb <= GOALS.rssLoadMb,
  };
  const mark = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(`\nthroughput, sidecar pair ÷ haproxy pair: ${result.throughputRatio} (goal ≥ ${GOALS.throughputRatio}: ${mark(result.met.throughputRatio)})`);
  console.log(`added latency at ${RATE} rps, sidecar pair: p50 ${result.addedP50Ms} ms, p99 ${result.addedP99Ms} ms (goal p99 ≤ ${GOALS.addedP99Ms} ms: ${mark(result.met.addedP99Ms)}); haproxy pair: p50 ${result.haproxyAddedP50Ms} ms, p99 ${result.haproxyAddedP99Ms} ms`);
  console.log(`server-side sidecar RSS: idle ${result.rssIdleMb} MB (goal ≤ ${GOALS.rssIdleMb}: ${mark(result.met.rssIdleMb)}), peak under load ${result.rssLoadMb} MB (goal ≤ ${GOALS.rssLoadMb}: ${mark(result.met.rssLoadMb)})`);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/proxy.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
  console.log('written bench/results/proxy.json');
  if (!result.quietMachine) console.warn('warning: other programs were busy during at least one setup (see foreignCpuPercent); run again on a quiet machine before quoting these figures');
} else if (!failed) {
  console.log(`\nnot all of ${SETUP_NAMES.join(', ')} ran, so bench/results/proxy.json is left as it was`);
}
