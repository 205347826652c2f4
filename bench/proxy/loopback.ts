// Loopback plumbing for the proxy benchmark: free ports, one-shot HTTP probes, waiting for a process to be ready.

import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { exited, logTail, type Child } from './children.ts';

/** `n` distinct free ports on 127.0.0.1, found by binding port 0 (all held open at once so none repeats). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => s.once('error', reject).listen(0, '127.0.0.1', resolve));
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

export interface Target {
  readonly url: string;
  /** a Host header to send (the sidecar's HTTP-proxy style outbound port routes by it) */
  readonly host?: string;
}

/** One GET on a fresh connection; null when nothing answers. */
export function probe(target: Target, timeoutMs = 2000): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = request(target.url, { agent: false, timeout: timeoutMs, headers: target.host ? { host: target.host } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body })).on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy()).on('error', () => resolve(null)).end();
  });
}

/**
 * Polls `check` until it returns true. Fails early, with their logs, if any of `watched` exits meanwhile, and
 * after `timeoutMs` with the last thing `check` said.
 */
export async function waitUntil(what: string, check: () => Promise<true | string>, watched: readonly Child[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not checked yet';
  for (;;) {
    const dead = watched.find(exited);
    if (dead) throw new Error(`${what}: ${dead.name} exited (${dead.proc.exitCode ?? dead.proc.signalCode}) before it was ready; its log (${dead.log}):\n${logTail(dead)}`);
    const r = await check();
    if (r === true) return;
    last = r;
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready after ${timeoutMs / 1000} s (${last}); logs:\n${watched.map((c) => `  ${c.name} (${c.log}):\n${logTail(c)}`).join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A readiness check that the target answers 200 with exactly `body`. */
export function answers(target: Target, body: string): () => Promise<true | string> {
  return async () => {
    const r = await probe(target);
    if (!r) return `${target.url}: no answer`;
    if (r.status !== 200 || r.body !== body) return `${target.url}: ${r.status} ${JSON.stringify(r.body.slice(0, 200))}`;
    return true;
  };
}
