// The control plane's metrics port (--metrics-listen, like istiod's monitoring port 15014): plain HTTP, GET /metrics
// in the Prometheus text format 0.0.4 and nothing else. Plain, because a scraper holds no mesh certificate and
// nothing here is secret: no label names a token, a key or one sidecar (../metrics.ts). Off unless asked for.

import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WeftError } from '../../errors.ts';
import { REASON_HEADER } from './http.ts';

/** The bind failures of metrics listeners, so that the CLI can name --metrics-listen and not --listen. */
const bindFailures = new WeakSet<object>();

/** Whether `err` is a MetricsListener's failure to listen (the address taken, not this host's, or no such host). */
export function isMetricsListenError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && bindFailures.has(err);
}

/** A scrape is one synchronous rendering: whoever holds a connection longer than this is cut. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Prometheus and a pair of HA replicas, a curl or two: more open connections than this are refused. */
const MAX_CONNECTIONS = 64;

export class MetricsListener {
  readonly #server: Server;
  #url = '';

  /** `text`: the exposition, rendered per scrape */
  constructor(text: () => string) {
    // Not an ES import: node:http's lazy exports would load Node's bundled undici, ~13 MB (sidecar/http/node-http.ts).
    const http = process.getBuiltinModule('node:http');
    this.#server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (path !== '/metrics') return refuse(res, 404, new WeftError('WEFT_API_NOT_FOUND', `no such endpoint: ${path.slice(0, 256)}; the metrics port serves GET /metrics`));
      if (req.method !== 'GET') {
        res.setHeader('allow', 'GET');
        return refuse(res, 405, new WeftError('WEFT_API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on /metrics; use GET`));
      }
      const body = text();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    });
    Object.assign(this.#server, { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, maxConnections: MAX_CONNECTIONS });
  }

  /** Listens on host:port (port 0 picks a free one); rejects with node's error, marked for isMetricsListenError. */
  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error) => {
        bindFailures.add(err);
        reject(err);
      };
      this.#server.once('error', failed);
      this.#server.listen(port, host, () => {
        this.#server.off('error', failed);
        resolve();
      });
    });
    const addr = this.#server.address() as AddressInfo;
    this.#url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}/metrics`;
    return this.#url;
  }

  /** http://host:port/metrics once listening, else '' */
  get url(): string {
    return this.#url;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve();
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

/** An error the metrics port answers itself: JSON with its code, and the reason header, as the API's errors are. */
function refuse(res: ServerResponse, status: number, err: WeftError): void {
  const body = JSON.stringify({ error: err.toJSON() });
  res.writeHead(status, { [REASON_HEADER]: err.code, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
