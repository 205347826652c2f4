// Loopback origins for the H1Pool tests (test/sidecar/http/h1-*.test.ts): node:http where a well-behaved server
// will do, raw TCP where a test must control every byte of the answer; and a driver for one exchange.

import type { ExecutionContext } from 'ava';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { H1Pool, type H1Request } from '../../sidecar/http/h1-client.ts';

export type CodedError = Error & { code?: string };

/** What one exchange delivered to its handler. */
export interface Outcome {
  /** every status onHeaders saw: exactly one for an answered exchange */
  statuses: number[];
  headers: string[];
  body: Buffer;
  /** from onComplete; null if it never came */
  trailers: string[] | null;
  error: CodedError | null;
  /** onComplete + onError calls, counted on after the promise settles */
  settles: number;
}

export interface Hooks {
  onConnect?(abort: (err?: Error) => void): void;
  onHeaders?(status: number, raw: string[], resume: () => void): void;
  /** decides onData's return value (the chunk is collected either way) */
  onData?(chunk: Buffer): boolean;
  /** the exchange counts as hung after this long (so a bug fails the test quickly instead of at ava's timeout) */
  timeoutMs?: number;
}

/** Dispatches one request and settles with what the handler saw: on onComplete, onError, or a timeout. */
export function call(pool: H1Pool, req: Partial<H1Request> = {}, hooks: Hooks = {}): Promise<Outcome> {
  const out: Outcome = { statuses: [], headers: [], body: Buffer.alloc(0), trailers: null, error: null, settles: 0 };
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      out.error = Object.assign(new Error('the exchange neither completed nor failed'), { code: 'TEST_TIMEOUT' });
      resolve(out);
    }, hooks.timeoutMs ?? 1500);
    const settle = () => {
      out.settles++;
      clearTimeout(timer);
      out.body = Buffer.concat(chunks);
      resolve(out);
    };
    pool.dispatch(
      { method: 'GET', path: '/', headers: { host: 'origin.test' }, body: null, ...req },
      {
        onConnect: hooks.onConnect,
        onHeaders(status, raw, resume) {
          out.statuses.push(status);
          out.headers = raw;
          hooks.onHeaders?.(status, raw, resume);
        },
        onData(chunk) {
          chunks.push(chunk);
          return hooks.onData ? hooks.onData(chunk) : true;
        },
        onComplete(trailers) {
          out.trailers = trailers;
          settle();
        },
        onError(err) {
          out.error = err;
          settle();
        },
      },
    );
  });
}

/** The values of one header in a raw name/value list. */
export function header(raw: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) values.push(raw[i + 1]!);
  return values;
}

export interface Origin {
  readonly port: number;
  /** TCP connections accepted so far */
  readonly connections: number;
  /** server-side sockets, in the order they were accepted */
  readonly sockets: net.Socket[];
}

export async function listen(t: ExecutionContext, server: net.Server): Promise<Origin> {
  const sockets: net.Socket[] = [];
  server.on('connection', (s: net.Socket) => {
    sockets.push(s);
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return sockets.length;
    },
    sockets,
  };
}

/** A node:http origin. */
export function httpOrigin(t: ExecutionContext, handler: http.RequestListener): Promise<Origin> {
  return listen(t, http.createServer(handler));
}

/**
 * A raw TCP origin: `answer` gets each request head (requests carry no body here) and the number of the
 * request on its connection (1 for the first), and writes whatever bytes the test needs.
 */
export function rawOrigin(t: ExecutionContext, answer: (socket: net.Socket, head: string, n: number) => void): Promise<Origin> {
  return listen(
    t,
    net.createServer((socket) => {
      let buffered = '';
      let n = 0;
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        buffered += d;
        for (let end = buffered.indexOf('\r\n\r\n'); end !== -1; end = buffered.indexOf('\r\n\r\n')) {
          const head = buffered.slice(0, end);
          buffered = buffered.slice(end + 4);
          answer(socket, head, ++n);
        }
      });
    }),
  );
}

/** A pool to 127.0.0.1:port; the client sockets it opened are kept for inspection and destroyed at teardown. */
export function poolTo(t: ExecutionContext, port: number, options: { connections?: number; keepAliveMs?: number } = {}) {
  const sockets: net.Socket[] = [];
  const pool = new H1Pool({
    connections: options.connections ?? 4,
    keepAliveMs: options.keepAliveMs ?? 10_000,
    readyEvent: 'connect',
    connect: () => {
      const s = net.connect({ host: '127.0.0.1', port });
      sockets.push(s);
      return s;
    },
  });
  t.teardown(() => {
    void pool.close();
    for (const s of sockets) s.destroy();
  });
  return { pool, sockets };
}

/** Resolves with `promise`, or rejects after `ms` so a missing event fails fast. */
export function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

export const pathOf = (head: string) => head.split(' ')[1]!;
