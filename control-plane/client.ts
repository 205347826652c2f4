// A client of the control plane's API over one HTTP/2 mTLS session: JSON calls and the snapshot stream.
//
// Used by the CLI, the sidecar and the tests. The server's certificate must chain to the given bundle and carry
// the control plane's SPIFFE ID (node's hostname check ignores URI SANs, so the ID is checked here).

import http2 from 'node:http2';
import { WeftError, type ErrorCode } from '../errors.ts';
import { spiffeIdOfCertificate } from '../ca/svid.ts';
import { SseParser, type SseMessage } from './push/sse.ts';

export interface ClientOptions {
  readonly url: string;
  /** PEM roots the control plane's certificate must chain to */
  readonly ca: string;
  /** the control plane's SPIFFE ID; any other server identity is refused */
  readonly serverIdentity: string;
  /** workload or operator certificate chain and key, for mTLS */
  readonly cert?: string;
  readonly key?: string;
  /** operator admin token, sent as a bearer token */
  readonly adminToken?: string;
}

export class ControlPlaneClient {
  readonly #o: ClientOptions;
  #session: http2.ClientHttp2Session | null = null;

  constructor(opts: ClientOptions) {
    this.#o = opts;
  }

  #connect(): http2.ClientHttp2Session {
    if (this.#session && !this.#session.closed && !this.#session.destroyed) return this.#session;
    const expected = this.#o.serverIdentity;
    const session = http2.connect(this.#o.url, {
      ca: this.#o.ca,
      cert: this.#o.cert,
      key: this.#o.key,
      minVersion: 'TLSv1.3',
      checkServerIdentity: (_host, cert) => {
        try {
          const id = spiffeIdOfCertificate(cert.raw).uri;
          return id === expected ? undefined : new Error(`the control plane presented ${id}, expected ${expected}`);
        } catch (err) {
          return err as Error;
        }
      },
    });
    session.on('error', () => {});
    this.#session = session;
    return session;
  }

  /** One JSON (or text) call. Throws a WeftError carrying the server's code, or WEFT_CP_UNREACHABLE. */
  async request<T>(method: string, path: string, body?: unknown, opts: { contentType?: string; headers?: Record<string, string> } = {}): Promise<T> {
    const session = this.#connect();
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: http2.OutgoingHttpHeaders = { ':method': method, ':path': path, ...opts.headers };
    if (payload !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
    if (this.#o.adminToken) headers.authorization = `Bearer ${this.#o.adminToken}`;
    return new Promise<T>((resolve, reject) => {
      const stream = session.request(headers);
      let status = 0;
      let type = '';
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        status = Number(h[':status']);
        type = String(h['content-type'] ?? '');
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (err) => reject(unreachable(this.#o.url, err)));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (status >= 200 && status < 300) {
          resolve((type.startsWith('application/json') ? JSON.parse(text) : text) as T);
          return;
        }
        reject(serverError(status, text));
      });
      stream.end(payload);
    });
  }

  /**
   * Opens the snapshot stream (POST with `body`). Calls `onMessage` for each SSE event; resolves when the
   * response headers arrive (rejects on an error status); `closed` settles when the stream ends.
   */
  async stream(path: string, body: unknown, onMessage: (m: SseMessage) => void): Promise<{ close(): void; closed: Promise<void> }> {
    const session = this.#connect();
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
    stream.end(JSON.stringify(body));
    stream.setEncoding('utf8');
    const parser = new SseParser();
    let ended!: () => void;
    const closed = new Promise<void>((r) => (ended = r));
    stream.on('close', () => ended());
    await new Promise<void>((resolve, reject) => {
      stream.once('error', (err) => reject(unreachable(this.#o.url, err)));
      stream.once('response', (h) => {
        const status = Number(h[':status']);
        if (status === 200) {
          resolve();
          return;
        }
        let text = '';
        stream.on('data', (c: string) => (text += c));
        stream.on('end', () => reject(serverError(status, text)));
      });
    });
    stream.on('error', () => {});
    stream.on('data', (chunk: string) => {
      for (const m of parser.push(chunk)) onMessage(m);
    });
    return { close: () => stream.close(http2.constants.NGHTTP2_CANCEL), closed };
  }

  close(): void {
    this.#session?.close();
    this.#session = null;
  }
}

function unreachable(url: string, err: Error): WeftError {
  return new WeftError('WEFT_CP_UNREACHABLE', `cannot reach the control plane at ${url}: ${err.message}`, { url }, { cause: err });
}

function serverError(status: number, text: string): WeftError {
  try {
    const { error } = JSON.parse(text) as { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } };
    return new WeftError(error.code, error.message, error.details ?? {});
  } catch {
    return new WeftError('WEFT_API_BAD_REQUEST', `control plane answered ${status}: ${text.slice(0, 200)}`);
  }
}
