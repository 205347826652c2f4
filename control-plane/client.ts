// A client of the control plane's API over mutual TLS: JSON calls and the snapshot stream.
//
// Used by the CLI, the sidecar and the tests. The server's certificate must chain to the given bundle and carry
// the control plane's SPIFFE ID (node's hostname check ignores URI SANs, so the ID is checked here).
//
// HTTP/1.1 (the control plane serves HTTP/2 and HTTP/1.1 on one port). The snapshot stream holds one connection
// and is full duplex: the sidecar's ACKs, NACKs and heartbeats go up its request body, so a sidecar holds that one
// connection only. Other calls (bootstrap, renewals, the CLI's) share at most two kept-alive ones. Not HTTP/2, so
// that a sidecar whose services all speak HTTP/1.1 never loads node:http2 (about 4 MB of RSS per sidecar); it is
// loaded only for HTTP/2 and gRPC traffic.

import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Agent, RequestOptions } from 'node:https';
import { WeftError, type ErrorCode } from '../errors.ts';
import { spiffeIdOfCertificate } from '../ca/svid.ts';
import { SseParser, type SseMessage } from './push/sse.ts';

// Not an ES import: it would read every export of node:https (and of node:http behind it), whose lazy getters
// load node's bundled undici (see sidecar/http/node-http.ts).
const https = process.getBuiltinModule('node:https');

/** How long a call (not the stream) may go without a byte from the control plane. */
export const CALL_TIMEOUT_MS = 30_000;

/**
 * The longest event the snapshot stream takes. A full snapshot of a mesh of thousands of services is a few MB; a
 * control plane that sends more without ending the event (a line with no newline, for ever) is broken, and
 * holding it all would take the sidecar's memory.
 */
export const MAX_EVENT_CHARS = 64 << 20;

/** How much of a refused stream's answer is read for its reason. */
const MAX_ERROR_CHARS = 64 << 10;

/** The snapshot stream's request body when it is full duplex: JSON lines (control-plane/api/stream-lines.ts). */
const NDJSON = 'application/x-ndjson';

/** An open snapshot stream. */
export interface SnapshotStream {
  close(): void;
  /** settles when the stream ends, with the reason when this side ended it */
  readonly closed: Promise<string | undefined>;
  /**
   * Writes one report line (`{type: 'ack' | 'heartbeat', id, …}`) up a full-duplex stream; false if the stream is
   * not full duplex or has ended (a new stream starts with a full snapshot, ACKed in its turn).
   */
  send(line: Record<string, unknown>): boolean;
}

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
  /** how long a call may go without a byte from the control plane; default CALL_TIMEOUT_MS */
  readonly callTimeoutMs?: number;
  /** where `ca` came from (a flag and file), named when the control plane's certificate does not chain to it */
  readonly caSource?: string;
}

export class ControlPlaneClient {
  readonly #o: ClientOptions;
  readonly #url: URL;
  /** calls: kept alive, at most two at once; the snapshot stream: a connection of its own, for as long as it lasts */
  #agents: { calls: Agent; stream: Agent } | null = null;

  constructor(opts: ClientOptions) {
    this.#o = opts;
    this.#url = new URL(opts.url);
  }

  /**
   * The TLS settings, the server identity check included, belong to the agent, not to each request: since the fix
   * for CVE-2026-58040, node gives a request that carries its own `checkServerIdentity` a connection of its own,
   * never reused. With the check per request, every call (a sidecar's heartbeat every 5 s, each ACK) was a new
   * mTLS handshake with the control plane; a push to 1,000 sidecars became 1,000 handshakes at once.
   * No TLS session cache either: a resumed session would skip the identity check (the control plane refuses
   * resumption anyway).
   */
  #agentFor(use: 'calls' | 'stream'): Agent {
    const expected = this.#o.serverIdentity;
    const tls = {
      maxCachedSessions: 0,
      ca: this.#o.ca,
      cert: this.#o.cert,
      key: this.#o.key,
      minVersion: 'TLSv1.3' as const,
      servername: '',
      checkServerIdentity: (_host: string, cert: { raw: Buffer }) => {
        try {
          const id = spiffeIdOfCertificate(cert.raw).uri;
          return id === expected ? undefined : new Error(`the control plane presented ${id}, expected ${expected}`);
        } catch (err) {
          return err as Error;
        }
      },
    };
    // Calls wait for one of two connections rather than opening more: a sidecar's ACKs come in bursts when
    // pushes follow each other, and each connection costs the control plane memory and a handshake. Two, so
    // that a heartbeat does not wait behind a slow renewal.
    this.#agents ??= { calls: new https.Agent({ ...tls, keepAlive: true, maxSockets: 2 }), stream: new https.Agent({ ...tls, keepAlive: false }) };
    return this.#agents[use];
  }

  #options(method: string, path: string, headers: Record<string, string>, use: 'calls' | 'stream'): RequestOptions {
    return {
      method,
      path,
      host: this.#url.hostname.replace(/^\[|\]$/g, ''),
      port: this.#url.port || 443,
      headers: this.#o.adminToken ? { ...headers, authorization: `Bearer ${this.#o.adminToken}` } : headers,
      agent: this.#agentFor(use),
    };
  }

  /**
   * Sends one request; resolves with the response once its head arrives. A request that found its kept-alive
   * connection closed by the server (reset on a reused socket, before any answer) is sent once more, as node's
   * documentation advises: the server never saw it.
   */
  #send(method: string, path: string, headers: Record<string, string>, payload: string | undefined, retried = false): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = https.request(this.#options(method, path, payload === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(payload)) }, 'calls'), resolve);
      req.on('error', (err: Error & { code?: string }) => {
        if (!retried && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) resolve(this.#send(method, path, headers, payload, true));
        else reject(unreachable(this.#o, err));
      });
      this.#answerWithin(req, false);
      req.end(payload);
    });
  }

  /**
   * A call that goes CALL_TIMEOUT_MS without a byte from the control plane (before its head or within its body)
   * fails as unreachable rather than waiting for ever: calls queue for two connections, and one control plane
   * that stopped answering must not hold every later call. The stream's request too, but only until its head
   * arrives; then its keepalives are watched instead (stream()).
   */
  #answerWithin(req: ClientRequest, untilHead: boolean): void {
    const timeoutMs = this.#o.callTimeoutMs ?? CALL_TIMEOUT_MS;
    let res: IncomingMessage | undefined;
    req.setTimeout(timeoutMs, () => {
      // Within the body, the reader sees the response's error, not the request's ("aborted" alone says nothing).
      const err = new Error(`no answer in ${timeoutMs / 1000} s`);
      res?.destroy(err);
      req.destroy(err);
    });
    req.once('response', (r: IncomingMessage) => {
      res = r;
      // A refusal's body is read as a call's is, under the timeout: only a stream that opened is watched otherwise.
      if (untilHead && r.statusCode === 200) req.setTimeout(0);
    });
  }

  /**
   * Sends the stream's request: full duplex, the registration as the body's first line and the body left open
   * (chunked); or, as older sidecars did, the registration as the whole body. Resolves when the head arrives.
   */
  #openStream(path: string, registration: string, duplex: boolean): Promise<{ req: ClientRequest; res: IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = duplex ? { 'content-type': NDJSON } : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(registration)) };
      const req = https.request(this.#options('POST', path, headers, 'stream'), (res) => resolve({ req, res }));
      req.on('error', (err) => reject(unreachable(this.#o, err)));
      this.#answerWithin(req, true);
      if (duplex) req.write(registration + '\n');
      else req.end(registration);
    });
  }

  /** One JSON (or text) call. Throws a WeftError carrying the server's code, or WEFT_CP_UNREACHABLE. */
  async request<T>(method: string, path: string, body?: unknown, opts: { contentType?: string; headers?: Record<string, string> } = {}): Promise<T> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = { ...opts.headers };
    if (payload !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
    const res = await this.#send(method, path, headers, payload);
    const text = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => reject(unreachable(this.#o, err)));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return (String(res.headers['content-type'] ?? '').startsWith('application/json') ? JSON.parse(text) : text) as T;
    throw serverError(status, text, res.headers['retry-after']);
  }

  /**
   * Opens the snapshot stream (POST with `body`, the registration). Calls `onMessage` for each SSE event; resolves
   * when the response headers arrive (rejects on an error status); `closed` settles when the stream ends, with
   * the reason when this side ended it. Full duplex unless `duplex: false` (an older sidecar's stream, whose
   * reports go by calls); the control plane must be one that reads such a stream (upgrade it first).
   *
   * The control plane writes a keepalive every `weft-keepalive-ms` (a response header). A stream that has
   * heard nothing for three of those is taken for dead and closed: a control plane whose host vanished or was
   * cut off sends no FIN or RST, and a stream that only reads would wait on it for ever, never to hear of the
   * control plane that replaces it.
   */
  async stream(path: string, body: unknown, onMessage: (m: SseMessage) => void, opts: { duplex?: boolean } = {}): Promise<SnapshotStream> {
    const duplex = opts.duplex ?? true;
    const { req, res } = await this.#openStream(path, JSON.stringify(body), duplex);
    res.setEncoding('utf8');
    if (res.statusCode !== 200) {
      let text = '';
      try {
        // An error's explanation is short; more is not read (a broken control plane could send it for ever).
        for await (const c of res) if ((text += c).length > MAX_ERROR_CHARS) break;
      } catch (err) {
        throw unreachable(this.#o, err as Error);
      } finally {
        req.destroy();
      }
      throw serverError(res.statusCode ?? 0, text);
    }
    const parser = new SseParser();
    let heard = Date.now();
    let reason: string | undefined;
    const keepaliveMs = Number(res.headers['weft-keepalive-ms']);
    const watchdog = Number.isSafeInteger(keepaliveMs) && keepaliveMs > 0
      ? setInterval(() => {
          const silent = Date.now() - heard;
          if (silent <= 3 * keepaliveMs) return;
          reason = `nothing from the control plane for ${(silent / 1000).toFixed(1)} s (it sends a keepalive every ${keepaliveMs / 1000} s)`;
          res.destroy();
        }, keepaliveMs).unref()
      : undefined;
    // The stream's connection carries nothing else: closing it, or its response ending, ends the request too.
    const closed = new Promise<string | undefined>((resolve) => res.once('close', () => (clearInterval(watchdog), req.destroy(), resolve(reason))));
    res.on('error', () => {});
    res.on('data', (chunk: string) => {
      heard = Date.now();
      for (const m of parser.push(chunk)) onMessage(m);
      if (parser.pendingChars <= MAX_EVENT_CHARS || res.destroyed) return;
      reason = `an event from the control plane passed ${MAX_EVENT_CHARS >> 20} MiB without ending`;
      res.destroy();
    });
    return {
      close: () => res.destroy(),
      closed,
      send: (line) => {
        if (!duplex || req.destroyed || req.writableEnded) return false;
        req.write(JSON.stringify(line) + '\n');
        return true;
      },
    };
  }

  close(): void {
    this.#agents?.calls.destroy();
    this.#agents?.stream.destroy();
    this.#agents = null;
  }
}

/** OpenSSL's codes for a server certificate that does not chain to the roots given. */
const NOT_OUR_ROOTS = new Set(['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED']);

function unreachable(o: ClientOptions, err: Error & { code?: string }): WeftError {
  const why = err.code !== undefined && NOT_OUR_ROOTS.has(err.code)
    ? `its certificate does not chain to the trust bundle${o.caSource ? ` ${o.caSource}` : ''} (${err.message}): is that this mesh's bundle?`
    : err.message;
  return new WeftError('WEFT_CP_UNREACHABLE', `cannot reach the control plane at ${o.url}: ${why}`, { url: o.url }, { cause: err });
}

/** The server's error, with its Retry-After (whole seconds) as `details.retryAfterSeconds` when it sent one. */
function serverError(status: number, text: string, retryAfter?: string): WeftError {
  const wait = retryAfter !== undefined && /^\d+$/.test(retryAfter) ? { retryAfterSeconds: Number(retryAfter) } : {};
  try {
    const { error } = JSON.parse(text) as { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } };
    return new WeftError(error.code, error.message, { ...error.details, ...wait });
  } catch {
    return new WeftError('WEFT_API_BAD_REQUEST', `control plane answered ${status}: ${text.slice(0, 200)}`);
  }
}
