// Load for the proxy benchmark: wrk for throughput, hey at a fixed rate for latency, and parsers for their text.

import { execFile } from 'node:child_process';
import type { Children } from './children.ts';
import type { Target } from './loopback.ts';

export interface WrkResult {
  readonly rps: number;
  readonly requests: number;
  /** latency percentiles at saturation, in ms */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** non-2xx/3xx responses plus socket errors */
  readonly errors: number;
}

export interface HeyResult {
  readonly rps: number;
  readonly requests: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly slowestMs: number;
  /** responses other than 200 plus transport errors */
  readonly errors: number;
}

function run(children: Children, binary: string, args: string[], seconds: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = execFile(binary, args, { timeout: (seconds + 30) * 1000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${binary} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
    children.adopt(binary.split('/').pop()!, proc);
  });
}

export async function wrk(children: Children, path: string, target: Target, o: { connections: number; threads: number; seconds: number }): Promise<WrkResult> {
  const args = ['-t', String(o.threads), '-c', String(o.connections), '-d', `${o.seconds}s`, '--latency', ...(target.host ? ['-H', `Host: ${target.host}`] : []), target.url];
  return parseWrk(await run(children, path, args, o.seconds));
}

/**
 * hey's -q is per worker: `workers` workers each limited to rate/workers requests per second. Each worker waits
 * for its response before its next tick, so the rate holds only while latency stays under workers/rate seconds
 * (10 ms at 20 workers and 2,000 requests/s); the achieved rate is reported to show it did.
 */
export async function hey(children: Children, path: string, target: Target, o: { rate: number; workers: number; seconds: number }): Promise<HeyResult> {
  const args = ['-z', `${o.seconds}s`, '-c', String(o.workers), '-q', String(o.rate / o.workers), ...(target.host ? ['-host', target.host] : []), target.url];
  return parseHey(await run(children, path, args, o.seconds));
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

function wrkTime(text: string, label: string): number {
  const m = new RegExp(`^\\s*${label}\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(text);
  if (!m) throw new Error(`wrk output has no ${label} line:\n${text}`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]! * 1000) / 1000;
}

export function parseWrk(text: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  const requests = /^\s*(\d+) requests in /m.exec(text);
  if (!rps || !requests) throw new Error(`wrk output has no request count:\n${text}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1, 5).reduce((n, x) => n + Number(x), 0) : 0;
  return { rps: Number(rps[1]), requests: Number(requests[1]), p50Ms: wrkTime(text, '50%'), p99Ms: wrkTime(text, '99%'), errors: non2xx + socketErrors };
}

/** hey prints seconds with four decimals: milliseconds to 0.1. */
function secondsToMs(s: string): number {
  return Math.round(Number(s) * 1e4) / 10;
}

export function parseHey(text: string): HeyResult {
  const pct = (p: number) => {
    const m = new RegExp(`^\\s*${p}% in ([\\d.]+) secs`, 'm').exec(text);
    if (!m) throw new Error(`hey output has no ${p}% latency (did any request succeed?):\n${text}`);
    return secondsToMs(m[1]!);
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const slowest = /Slowest:\s+([\d.]+) secs/.exec(text);
  if (!rps || !slowest) throw new Error(`hey output has no summary:\n${text}`);
  let ok = 0;
  let other = 0;
  for (const m of text.matchAll(/^\s*\[(\d+)\]\s+(\d+) responses/gm)) {
    if (m[1] === '200') ok += Number(m[2]);
    else other += Number(m[2]);
  }
  const errorSection = /Error distribution:\n([\s\S]*)$/.exec(text)?.[1] ?? '';
  const transport = [...errorSection.matchAll(/^\s*\[(\d+)\]\s/gm)].reduce((n, m) => n + Number(m[1]), 0);
  return { rps: Math.round(Number(rps[1])), requests: ok + other + transport, p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99), slowestMs: secondsToMs(slowest[1]!), errors: other + transport };
}

export interface H2loadResult {
  readonly rps: number;
  readonly requests: number;
  /** mean and largest time per request, ms (h2load prints no percentiles) */
  readonly meanMs: number;
  readonly maxMs: number;
  /** requests that failed, errored, timed out, or were answered other than 2xx */
  readonly errors: number;
}

/**
 * h2load (nghttp2): `clients` connections with `streams` concurrent streams each, for `seconds` after `warmupSeconds`,
 * each request a POST of `bodyFile` with gRPC's request headers.
 */
export async function h2load(children: Children, path: string, url: string, o: { clients: number; streams: number; seconds: number; warmupSeconds: number; bodyFile: string }): Promise<H2loadResult> {
  const args = ['-c', String(o.clients), '-m', String(o.streams), '-D', String(o.seconds), `--warm-up-time=${o.warmupSeconds}`, '-d', o.bodyFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers', url];
  return parseH2load(await run(children, path, args, o.seconds + o.warmupSeconds));
}

const H2LOAD_UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3 };

export function parseH2load(text: string): H2loadResult {
  const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(text);
  const req = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  const time = /time for request:\s+[\d.]+(?:us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(text);
  if (!rps || !req || !codes || !time) throw new Error(`h2load output has no summary:\n${text}`);
  const errors = Number(req[4]) + Number(req[5]) + Number(req[6]) + Number(codes[2]) + Number(codes[3]) + Number(codes[4]);
  const ms = (v: string, unit: string) => Math.round(Number(v) * H2LOAD_UNIT_MS[unit]! * 1000) / 1000;
  return { rps: Math.round(Number(rps[1])), requests: Number(req[2]), meanMs: ms(time[3]!, time[4]!), maxMs: ms(time[1]!, time[2]!), errors };
}
