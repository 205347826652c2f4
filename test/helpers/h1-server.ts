// An H1Server (sidecar/http/h1-server.ts) on a loopback port, and a raw TCP client that writes request bytes and
// collects the answer as text, for test/sidecar/http/h1-server*.test.ts.

import type { ExecutionContext } from 'ava';
import { once } from 'node:events';
import net from 'node:net';
import { answerClientError } from '../../sidecar/http/client-error.ts';
import { H1Server, type H1ServerOptions, type RequestHandler, type UpgradeHandler } from '../../sidecar/http/h1-server.ts';
import { listen, type Origin } from './h1-origins.ts';

/** Timeouts short enough that a timeout test takes 2-3 s (the server checks them once a second). */
export const FAST: H1ServerOptions = { maxHeaderSize: 16 * 1024, headersTimeoutMs: 1000, requestTimeoutMs: 3000, keepAliveTimeoutMs: 1000 };
/** Timeouts no test waits for. */
export const SLOW: H1ServerOptions = { maxHeaderSize: 16 * 1024, headersTimeoutMs: 30_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 30_000 };

/** Serves `onRequest` on 127.0.0.1 as the listeners do (net server with noDelay, answerClientError). */
export async function h1Server(
  t: ExecutionContext,
  onRequest: RequestHandler,
  more: { options?: Partial<H1ServerOptions>; onUpgrade?: UpgradeHandler } = {},
): Promise<Origin & { h1: H1Server }> {
  const h1 = new H1Server({ ...SLOW, ...more.options }, onRequest, more.onUpgrade ?? ((_req, socket) => socket.destroy()), answerClientError);
  const origin = await listen(t, net.createServer({ noDelay: true }, (socket) => h1.serve(socket)));
  return Object.assign(origin, { h1 });
}

export interface RawClient {
  readonly socket: net.Socket;
  /** everything received so far (latin1), each Date header's value replaced by "D" */
  readonly text: string;
  /** the Date values received, in order */
  readonly dates: string[];
  /** true once the server has ended or closed the connection */
  readonly closed: boolean;
  send(data: string | Buffer): void;
  /** Resolves with the text once `done(text)` holds; rejects after `ms` with what had arrived. */
  until(done: (text: string) => boolean, ms?: number): Promise<string>;
  /** Resolves with the text once the server has closed the connection. */
  untilClosed(ms?: number): Promise<string>;
}

export async function rawClient(t: ExecutionContext, port: number): Promise<RawClient> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  let received = '';
  let closed = false;
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    received += d;
    wake();
  });
  socket.on('end', () => ((closed = true), wake()));
  socket.on('close', () => ((closed = true), wake()));
  const DATE = /^(date: )([^\r]*)\r\n/gim;
  const text = () => received.replace(DATE, '$1D\r\n');
  const until = (done: (text: string) => boolean, ms = 2000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const now = text();
        if (!done(now)) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(now);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`after ${ms} ms (closed: ${closed}) only this had arrived: ${JSON.stringify(text())}`));
      }, ms);
      waiters.add(check);
      check();
    });
  return {
    socket,
    get text() {
      return text();
    },
    get dates() {
      return [...received.matchAll(DATE)].map((m) => m[2]!);
    },
    get closed() {
      return closed;
    },
    send: (data) => void socket.write(data),
    until,
    untilClosed: (ms) => until(() => closed, ms),
  };
}

/** Waits until `text` holds `expected` (or more); returns the text for an exact comparison. */
export const atLeast = (c: RawClient, expected: string, ms?: number) => c.until((s) => s.length >= expected.length, ms);

export const get = (path: string, headers = 'host: weft.test\r\n', version = '1.1') => `GET ${path} HTTP/${version}\r\n${headers}\r\n`;
