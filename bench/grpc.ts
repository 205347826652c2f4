// bench (grpc) — gRPC-shaped HTTP/2 through the data plane against a peer, as bench/proxy.ts does for HTTP/1: the
// app alone, behind a pair of Weft sidecars, behind a pair of haproxy processes doing the same two hops in HTTP/2
// (h2c in, h2 over mTLS between, h2c to the app), and behind the least node:http2 can do for them (node-h2:
// ./proxy/node-h2-relay.ts, with the sidecars' heap settings), in one run on one machine.
//
// The app is nginx speaking h2c and answering every call as a gRPC server does (content-type application/grpc, a
// small body, grpc-status 0 in trailers); the load is h2load (nghttp2) posting a small gRPC message with gRPC's
// request headers on 4 connections × 8 concurrent streams. Each setup gets the load alone, in turn, the order
// reversed every other round. Figures are medians over the rounds; the throughput ratio is the median of each
// round's ratio. CPU per call is each proxy's main thread (/proc/PID/schedstat); RSS is read idle (ready, before
// any load) and at its peak (VmHWM) after the last round. Writes bench/results/grpc.json.
//
// Env: BENCH_ROUNDS (3), BENCH_SECONDS (10), BENCH_WARMUP_SECONDS (2), BENCH_H2_CLIENTS (4), BENCH_H2_STREAMS (8).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Children, exited, logTail, type Child } from './proxy/children.ts';
import { startHaproxyPair } from './proxy/haproxy.ts';
import { h2load, type H2loadResult } from './proxy/load.ts';
import { freePorts, waitUntil } from './proxy/loopback.ts';
import { APP_BODY, startNginx } from './proxy/nginx.ts';
import { mainThreadSched, rss } from './proxy/proc-stats.ts';
import { codeRevision, findTools, toolVersions } from './proxy/tools.ts';
import { sidecarSupport, startWeftPair } from './proxy/weft.ts';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const ROUNDS = env('BENCH_ROUNDS', 3);
const SECONDS = env('BENCH_SECONDS', 10);
const WARMUP_SECONDS = env('BENCH_WARMUP_SECONDS', 2);
const CLIENTS = env('BENCH_H2_CLIENTS', 4);
const STREAMS = env('BENCH_H2_STREAMS', 8);
const TOOLS = ['haproxy', 'nginx', 'h2load'];
/** the call every request makes: a gRPC method path */
const PATH = '/bench.Echo/Call';

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r1 = (x: number) => Math.round(x * 10) / 10;

/**
 * One gRPC-shaped call to `port` (h2c): true once it is answered 200 with APP_BODY and grpc-status 0 in its
 * trailers, else what came instead.
 */
function grpcCall(port: number): Promise<true | string> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const done = (r: true | string) => {
      session.destroy();
      resolve(r);
    };
    session.on('error', (err) => done(`127.0.0.1:${port}: ${err.message}`));
    session.setTimeout(2000, () => done(`127.0.0.1:${port}: no answer in 2 s`));
    const req = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', (err) => done(`127.0.0.1:${port}: ${err.message}`));
    let status = 0;
    let body = '';
    let grpcStatus: string | undefined;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('trailers', (t) => (grpcStatus = t['grpc-status'] as string | undefined));
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => done(status === 200 && body === APP_BODY && grpcStatus === '0' ? true : `127.0.0.1:${port}: ${status} ${JSON.stringify(body)} grpc-status ${grpcStatus}`));
    req.end(MESSAGE);
  });
}

/** A gRPC message frame: uncompressed, 5 bytes long (protobuf field 1, the string "abc"). */
const MESSAGE = Buffer.from([0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x62, 0x63]);

interface Setup {
  readonly name: 'direct' | 'haproxy' | 'node-h2' | 'weft';
  readonly port: number;
  /** client side, server side */
  readonly proxies: readonly Child[];
  readonly others: readonly Child[];
  readonly runs: { result: H2loadResult; cpuUs: number[] }[];
  rssIdleMb?: number[];
}

const tools = findTools(TOOLS, 'bench/grpc.ts');
if ('missing' in tools) {
  console.error(tools.missing);
  process.exit(1);
}
const support = await sidecarSupport();
if ('missing' in support || !support.upstreamFlag) {
  console.error('missing' in support ? support.missing : 'the sidecar has no --upstream flag, which the gRPC benchmark needs (an h2c port for the service)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-grpc-'));
const children = new Children(dir);
try {
  const p = await freePorts(13);
  const bodyFile = join(dir, 'message.bin');
  writeFileSync(bodyFile, MESSAGE);
  const nginx = startNginx(children, tools.paths.nginx!, dir, p[0]!, { grpc: true });
  await waitUntil('nginx (h2c)', () => grpcCall(p[0]!), [nginx]);
  const hap = await startHaproxyPair(children, tools.paths.haproxy!, dir, { front: p[1]!, tls: p[2]!, app: p[0]! }, { h2: true });
  const relay = fileURLToPath(new URL('./proxy/node-h2-relay.ts', import.meta.url));
  const certs = join(dir, 'haproxy-h2');
  const flags = ['--max-semi-space-size=4', '--no-parallel-scavenge'];
  const nServer = children.start('node-h2-server', process.execPath, [...flags, relay, 'server', String(p[12]), String(p[0]), certs]);
  const nClient = children.start('node-h2-client', process.execPath, [...flags, relay, 'client', String(p[11]), String(p[12]), certs]);
  const weft = await startWeftPair(children, dir, { app: p[0]!, clientApp: p[3]!, upstream: p[4]!, client: { inbound: p[5]!, outbound: p[6]!, admin: p[7]! }, server: { inbound: p[8]!, outbound: p[9]!, admin: p[10]! } }, support, 'grpc');
  const setups: Setup[] = [
    { name: 'direct', port: p[0]!, proxies: [], others: [nginx], runs: [] },
    { name: 'haproxy', port: p[1]!, proxies: [hap.client, hap.server], others: [nginx], runs: [] },
    { name: 'node-h2', port: p[11]!, proxies: [nClient, nServer], others: [nginx], runs: [] },
    { name: 'weft', port: p[4]!, proxies: [weft.client, weft.server], others: [nginx, weft.controlPlane], runs: [] },
  ];
  for (const s of setups) await waitUntil(`${s.name} (gRPC through it)`, () => grpcCall(s.port), [...s.proxies, ...s.others]);
  for (const s of setups) s.rssIdleMb = s.proxies.map((c) => rss(c.pid).rssMb);
  console.log(`load: ${ROUNDS} rounds of each setup in turn; h2load ${CLIENTS} connections × ${STREAMS} streams, ${SECONDS} s after ${WARMUP_SECONDS} s warm-up; ${availableParallelism()} CPUs`);

  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    for (const s of round % 2 ? setups : [...setups].reverse()) {
      const before = s.proxies.map((c) => mainThreadSched(c.pid).cpuNs);
      const result = await h2load(children, tools.paths.h2load!, `http://127.0.0.1:${s.port}${PATH}`, { clients: CLIENTS, streams: STREAMS, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, bodyFile });
      // CPU over the warm-up too, so per call it is divided by every call made: h2load's count covers only the
      // measured seconds; its rate times the warm-up gives the rest.
      const calls = result.requests + result.rps * WARMUP_SECONDS;
      const cpuUs = s.proxies.map((c, i) => r1((mainThreadSched(c.pid).cpuNs - before[i]!) / calls / 1e3));
      const dead = [...s.proxies, ...s.others].find(exited);
      if (dead) throw new Error(`${s.name}: ${dead.name} exited during the run; its log (${dead.log}):\n${logTail(dead)}`);
      if (result.errors > 0) console.warn(`  warning: ${s.name}: ${result.errors} of ${result.requests} calls failed or were not 2xx`);
      s.runs.push({ result, cpuUs });
      line.push(`${s.name} ${result.rps} calls/s mean ${result.meanMs.toFixed(2)} ms${cpuUs.length ? ` cpu ${cpuUs.join(' + ')} µs` : ''}`);
    }
    console.log(`round ${round}: ${line.join('   ')}`);
  }

  const [direct, haproxy, nodeH2, weftSetup] = setups as [Setup, Setup, Setup, Setup];
  const summary = (s: Setup) => ({
    callsPerSecond: Math.round(median(s.runs.map((r) => r.result.rps))),
    meanMs: Math.round(median(s.runs.map((r) => r.result.meanMs)) * 1000) / 1000,
    cpuUsPerCall: s.proxies.map((_, i) => r1(median(s.runs.map((r) => r.cpuUs[i]!)))),
    rssIdleMb: s.rssIdleMb ?? [],
    rssPeakMb: s.proxies.map((c) => rss(c.pid).peakMb),
    errors: s.runs.reduce((n, r) => n + r.result.errors, 0),
    rounds: s.runs.map((r) => ({ callsPerSecond: r.result.rps, meanMs: r.result.meanMs, maxMs: r.result.maxMs, cpuUsPerCall: r.cpuUs })),
  });
  const ratio = median(weftSetup.runs.map((r, i) => r.result.rps / haproxy.runs[i]!.result.rps));
  const result = {
    throughputRatio: Math.round(ratio * 1000) / 1000,
    /** the same ratio for the bare node:http2 relay: how far Node itself gets */
    nodeH2ThroughputRatio: Math.round(median(nodeH2.runs.map((r, i) => r.result.rps / haproxy.runs[i]!.result.rps)) * 1000) / 1000,
    setups: { direct: summary(direct), haproxy: summary(haproxy), 'node-h2': summary(nodeH2), weft: summary(weftSetup) },
    load: { tool: 'h2load', clients: CLIENTS, streamsPerClient: STREAMS, seconds: SECONDS, warmupSeconds: WARMUP_SECONDS, rounds: ROUNDS, path: PATH, requestBytes: MESSAGE.length },
    code: codeRevision(),
    machine: { cpus: availableParallelism() },
    tools: toolVersions(TOOLS),
    date: new Date().toISOString(),
  };
  for (const name of ['direct', 'haproxy', 'node-h2', 'weft'] as const) {
    const m = result.setups[name];
    const cost = m.cpuUsPerCall.length ? `   CPU/call ${m.cpuUsPerCall.join(' + ')} µs   RSS idle ${m.rssIdleMb.join(' / ')} MB, peak ${m.rssPeakMb.join(' / ')} MB (client / server side)` : '';
    console.log(`${name.padEnd(8)} ${String(m.callsPerSecond).padStart(7)} calls/s   mean ${m.meanMs.toFixed(2)} ms${cost}`);
  }
  console.log(`throughput ratio (sidecars ÷ haproxy): ${result.throughputRatio}; node-h2 ÷ haproxy: ${result.nodeH2ThroughputRatio}`);
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/grpc.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
  console.log('written bench/results/grpc.json');
} finally {
  await children.stopAll();
  if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
}
