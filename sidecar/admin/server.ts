// The admin port: readiness and liveness, the applied config, certificates, metrics. Loopback by default,
// since config and certificate dumps must not leave the host (the private key is never shown).

import type { Server } from 'node:http';
import { http } from '../http/node-http.ts';
import { isIP, type AddressInfo } from 'node:net';
import { httpDate } from '../clock.ts';

export interface AdminSources {
  /** null when ready, else what is still missing */
  notReady(): string | null;
  config(): unknown;
  certs(): unknown;
  metrics(): Promise<string>;
}

/** Whether a Host header names this machine by an address (or localhost), not by a DNS name. */
export function addressHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '');
  return name.toLowerCase() === 'localhost' || isIP(name) !== 0;
}

export class AdminServer {
  readonly #server: Server;

  constructor(sources: AdminSources) {
    this.#server = http.createServer((req, res) => {
      // node's own Date goes through toUTCString, which loads ICU's time-zone data (sidecar/clock.ts).
      res.sendDate = false;
      res.setHeader('date', httpDate(Date.now()));
      const path = (req.url ?? '/').split('?')[0];
      const json = (status: number, body: unknown) => {
        const data = JSON.stringify(body, null, 2) + '\n';
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(data);
      };
      // A page in a browser on this host could reach the admin port through a DNS name it points at 127.0.0.1
      // (DNS rebinding), and read /config: the port answers only to an IP address or localhost as Host.
      if (req.headers.host !== undefined && !addressHost(req.headers.host)) {
        res.writeHead(421, { 'content-type': 'text/plain' }).end(`admin port: Host ${JSON.stringify(req.headers.host)} is not an IP address or localhost\n`);
        return;
      }
      if (req.method !== 'GET') {
        res.writeHead(405, { allow: 'GET' }).end();
        return;
      }
      switch (path) {
        case '/ready': {
          const missing = sources.notReady();
          res.writeHead(missing ? 503 : 200, { 'content-type': 'text/plain' }).end(missing ? `not ready: ${missing}\n` : 'ready\n');
          return;
        }
        case '/live':
          res.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
          return;
        case '/config':
          json(200, sources.config());
          return;
        case '/certs':
          json(200, sources.certs());
          return;
        case '/metrics':
          sources.metrics().then(
            (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text),
            (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
          );
          return;
        default:
          res.writeHead(404, { 'content-type': 'text/plain' }).end('admin endpoints: /ready /live /config /certs /metrics\n');
      }
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => resolve((this.#server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
