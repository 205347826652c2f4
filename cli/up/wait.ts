// Waiting for the mesh to come up: polls with a deadline, given up at once when `weft up` starts stopping.

import http from 'node:http';
import net from 'node:net';

export class WaitTimeout extends Error {
  readonly code = 'WEFT_UP_TIMEOUT';
}

/** Calls `probe` every `everyMs` until it returns something other than undefined; throws past `timeoutMs`. */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, opts: { timeoutMs: number; signal: AbortSignal; everyMs?: number }): Promise<T> {
  const end = Date.now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    opts.signal.throwIfAborted();
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > end) throw new WaitTimeout(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what}${last ? ` (last: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 100));
  }
}

/** GET http://127.0.0.1:PORT/PATH: its status and body (a short timeout; nothing is kept open). */
export function httpGet(port: number, path: string, timeoutMs = 3000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:PORT. */
export function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
