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

/** The share of all CPUs busy over `ms` (from /proc/stat), in percent: other work on the machine skews every figure. */
export async function machineBusyPercent(ms = 1000): Promise<number> {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + f[4]!; // idle + iowait
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = read();
  return Math.round((1 - (b.idle - a.idle) / (b.total - a.total)) * 100);
}
