// What a proxy process costs, read from /proc: resident memory (now and peak) and CPU time used.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Rss {
  /** VmRSS, MB */
  readonly rssMb: number;
  /** VmHWM: the peak resident set since the process started, MB */
  readonly peakMb: number;
}

export function rss(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: round1(kb('VmRSS') / 1024), peakMb: round1(kb('VmHWM') / 1024) };
}

let ticksPerSecond: number | undefined;

/** User + system CPU seconds of a process (and its reaped children, none here) so far. */
export function cpuSeconds(pid: number): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Samples VmRSS every `everyMs` until stopped; the largest sample, MB. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number } {
  let max = 0;
  const timer = setInterval(() => {
    try {
      max = Math.max(max, rss(pid).rssMb);
    } catch {
      // the process is gone; the caller finds out from its own checks
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return max;
    },
  };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total }; // all but idle and iowait
}

/** The share of all CPUs busy over `ms` (from /proc/stat), in percent: other work on the machine skews every figure. */
export async function machineBusyPercent(ms = 1000): Promise<number> {
  const a = machineTicks();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = machineTicks();
  return Math.round(((b.busy - a.busy) / (b.total - a.total)) * 100);
}

function ownTicks(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      n += cpuSeconds(pid) * (ticksPerSecond ?? 100);
    } catch {
      // gone: its time no longer shows anywhere, a small undercount of our own work
    }
  }
  // This process, plus the load generators it has already waited for (cutime and cstime count reaped children).
  const self = readFileSync('/proc/self/stat', 'utf8');
  const f = self.slice(self.lastIndexOf(')') + 2).split(' ');
  return n + Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

/**
 * Watches for CPU time spent by anything other than `pids`, this process and its finished children (wrk, hey),
 * as a percentage of all CPUs: a figure measured while something else ran is not comparable with the others.
 * Kernel work charged to no process (softirq threads) counts as foreign too, so a quiet machine reads a few percent.
 */
export function watchForeignCpu(pids: readonly number[]): { stop(): number } {
  cpuSeconds(process.pid); // sets ticksPerSecond
  const m0 = machineTicks();
  const o0 = ownTicks(pids);
  return {
    stop() {
      const m1 = machineTicks();
      const foreign = m1.busy - m0.busy - (ownTicks(pids) - o0);
      return Math.max(0, Math.round((foreign / (m1.total - m0.total)) * 100));
    },
  };
}

/**
 * What the scheduler did with a process's main thread so far: CPU time and time spent runnable but waiting for a
 * CPU (/proc/PID/schedstat, ns), how often it was preempted (nonvoluntary_ctxt_switches in /proc/PID/status), and
 * how often it went to sleep waiting for work (voluntary_ctxt_switches): each of those is a wake-up.
 */
export function mainThreadSched(pid: number): { cpuNs: number; waitNs: number; preempted: number; slept: number } {
  const [cpu, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const count = (name: string) => Number(new RegExp(`^${name}_ctxt_switches:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { cpuNs: cpu!, waitNs: wait!, preempted: count('nonvoluntary'), slept: count('voluntary') };
}
