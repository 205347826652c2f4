// The outside tools the proxy benchmark drives (Debian packages), where they are and which versions ran.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Tool {
  readonly binary: string;
  readonly pkg: string;
  readonly role: string;
}

export const TOOLS: readonly Tool[] = [
  { binary: 'haproxy', pkg: 'haproxy', role: 'the reference proxy pair' },
  { binary: 'nginx', pkg: 'nginx-light', role: 'the app' },
  { binary: 'wrk', pkg: 'wrk', role: 'throughput load' },
  { binary: 'hey', pkg: 'hey', role: 'fixed-rate latency load' },
  { binary: 'h2load', pkg: 'nghttp2-client', role: 'HTTP/2 (gRPC-shaped) load' },
];

/** What bench/proxy.ts needs; bench/grpc.ts needs h2load instead of wrk and hey. */
export const PROXY_TOOLS = ['haproxy', 'nginx', 'wrk', 'hey'] as const;

/** PATH plus the sbin folders, which a non-root shell on Debian often lacks (haproxy and nginx live there). */
export function locate(binary: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, binary);
    if (d && existsSync(p)) return p;
  }
  return null;
}

/** Paths of every tool, or a message naming what is missing and the one command that installs it. */
export function findTools(names: readonly string[] = PROXY_TOOLS, bench = 'bench/proxy.ts'): { paths: Record<string, string> } | { missing: string } {
  const paths: Record<string, string> = {};
  const missing: Tool[] = [];
  for (const t of TOOLS.filter((x) => names.includes(x.binary))) {
    const p = locate(t.binary);
    if (p) paths[t.binary] = p;
    else missing.push(t);
  }
  if (missing.length === 0) return { paths };
  return {
    missing: [
      `${bench} needs ${missing.map((t) => `${t.binary} (${t.role})`).join(', ')}, not found on PATH or in /usr/sbin.`,
      `On Debian or Ubuntu: sudo apt-get update && sudo apt-get install -y ${missing.map((t) => t.pkg).join(' ')}`,
      `(the installed nginx and haproxy services are not used; the benchmark runs its own on 127.0.0.1)`,
    ].join('\n'),
  };
}

/** Package versions from dpkg (hey has no --version); 'unknown' off Debian. */
export function toolVersions(names: readonly string[] = PROXY_TOOLS): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of TOOLS.filter((x) => names.includes(x.binary))) {
    try {
      out[t.pkg] = execFileSync('dpkg-query', ['-W', '-f', '${Version}', t.pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || 'unknown';
    } catch {
      out[t.pkg] = 'unknown';
    }
  }
  return out;
}

/** Which code was measured: the commit, and whether the sidecar's (or CLI's, CA's, control plane's) sources differed from it. */
export function codeRevision(): { commit: string; uncommittedChanges: boolean } | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: new URL('../..', import.meta.url), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: git('rev-parse', 'HEAD'), uncommittedChanges: git('status', '--porcelain', '--', 'sidecar', 'cli', 'ca', 'control-plane') !== '' };
  } catch {
    return null;
  }
}
