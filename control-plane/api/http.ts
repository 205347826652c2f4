// HTTP plumbing for the control plane's API: bounded JSON bodies, JSON answers, and errors with a reason header.

import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { isWeftError, WeftError } from '../../errors.ts';

export type Request = Http2ServerRequest;
export type Response = Http2ServerResponse;

/** Every answer the control plane makes about an error carries this header, so nobody mistakes it for a proxy's. */
export const REASON_HEADER = 'x-weft-reason';

/**
 * How long a request body may take to arrive whole. Node's own limit (the HTTP/1.1 server's requestTimeout) is
 * off: a sidecar's full-duplex stream is a request whose body lasts as long as the stream (./server.ts).
 */
export const BODY_DEADLINE_MS = 30_000;

export async function readBody(req: Request, limitBytes: number, deadlineMs = BODY_DEADLINE_MS): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limitBytes) throw tooLarge(limitBytes);
  const whole = (async () => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limitBytes) throw tooLarge(limitBytes);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  })();
  // Late: answered 408 (sendError closes an HTTP/1.1 connection after it); the rest of the body is not awaited.
  whole.catch(() => {});
  let deadline: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (deadline = setTimeout(() => (req.pause(), reject(bodyTimeout(deadlineMs))), deadlineMs)));
  try {
    return await Promise.race([whole, late]);
  } finally {
    clearTimeout(deadline);
  }
}

export function bodyTimeout(deadlineMs: number): WeftError {
  return new WeftError('WEFT_API_TIMEOUT', `request body did not arrive whole within ${deadlineMs / 1000} s`, { deadlineMs });
}

function tooLarge(limit: number): WeftError {
  return new WeftError('WEFT_API_TOO_LARGE', `request body is larger than ${limit} bytes`, { limit });
}

export async function readJson<T>(req: Request, limitBytes = 64 * 1024): Promise<T> {
  const body = await readBody(req, limitBytes);
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('expected a JSON object');
    return value as T;
  } catch (err) {
    throw new WeftError('WEFT_API_BAD_REQUEST', `request body is not a JSON object: ${(err as Error).message}`);
  }
}

export function sendJson(res: Response, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-store' });
  res.end(data);
}

export function sendError(res: Response, err: unknown): void {
  const e = isWeftError(err) ? err : new WeftError('WEFT_API_BAD_REQUEST', 'internal error');
  const status = isWeftError(err) ? e.status : 500;
  if (res.headersSent) {
    res.end();
    return;
  }
  res.setHeader(REASON_HEADER, e.code);
  // A request whose body is still coming (too slow, or a stream refused) ends its HTTP/1.1 connection.
  if ((e.code === 'WEFT_API_TIMEOUT' || !res.req.complete) && res.req.httpVersionMajor === 1) res.setHeader('connection', 'close');
  sendJson(res, status, { error: e.toJSON() });
}

/** Reads a string field, or throws naming it. */
export function field(body: Record<string, unknown>, name: string, opts: { optional?: boolean; max?: number } = {}): string {
  const v = body[name];
  if (v === undefined && opts.optional) return '';
  if (typeof v !== 'string' || v === '') throw new WeftError('WEFT_API_BAD_REQUEST', `"${name}" is required and must be a non-empty string`, { field: name });
  if (v.length > (opts.max ?? 8192)) throw new WeftError('WEFT_API_BAD_REQUEST', `"${name}" is longer than ${opts.max ?? 8192} characters`, { field: name });
  return v;
}
