// The catalog service the traffic and resilience tests route to: a controllable HTTP app, the mesh around it,
// and a client going through web's sidecar.

import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Agent, request } from 'undici';
import type { SidecarProc } from './mesh.ts';
import { meshYaml } from './mesh-yaml.ts';

/** A test app that says who it is and can be told to fail or to be slow. */
export async function controllable(name: string) {
  const state = { failing: false, failStatus: 503, delayMs: 0, hits: 0, paths: [] as string[], bodies: [] as string[], hosts: new Set<string>(), cut: 0 };
  const server = http.createServer((req, res) => {
    state.hits++;
    // the caller went away before the answer was sent
    res.on('close', () => void (res.writableFinished || state.cut++));
    state.paths.push(req.url!);
    state.hosts.add(req.headers.host ?? '');
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    const answer = () => {
      if (state.failing) {
        res.writeHead(state.failStatus, { 'content-type': 'text/plain' }).end(`${name} failing`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
    };
    // Answered once the request is all in, as most apps do.
    req.on('end', () => {
      if (body) state.bodies.push(`${req.method} ${req.url} ${body.length <= 64 ? body : `${body.length} bytes`}`);
      if (state.delayMs) setTimeout(answer, state.delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 1000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { name, state, port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

/** web, and catalog with subsets v1 and v2; `extra` is more documents (routes, policies). */
export const MESH = (extra: string) => meshYaml({ services: { web: '{port: 8080}', catalog: '{port: 8081, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}' }, extra });

/** GET `path` from catalog through web's outbound port. */
export async function get(web: SidecarProc, path: string, headers: Record<string, string> = {}, dispatcher?: Agent) {
  const r = await request(`http://127.0.0.1:${web.ports.outbound}${path}`, { headers: { host: 'catalog', ...headers }, dispatcher });
  return { status: r.statusCode, body: await r.body.text(), reason: r.headers['x-weft-reason'] as string | undefined };
}

/** `n` calls of `one`, `concurrency` at a time, results in order. */
export async function many<T>(n: number, concurrency: number, one: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await one(i);
    }
  }));
  return out;
}
