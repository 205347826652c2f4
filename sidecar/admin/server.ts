// The admin port: readiness and liveness, the applied config, certificates, metrics. Loopback by default,
// since config and certificate dumps must not leave the host (the private key is never shown).

import type { Server } from 'node:http';
import { http } from '../http/node-http.ts';
import type { AddressInfo } from 'node:net';
import { httpDate } from '../clock.ts';

export interface AdminSources {
  /** null when ready, else what is still missing */
  notReady(): string | null;
  config(): unknown;
  certs(): unknown;
  metrics(): Promise<string>;
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
