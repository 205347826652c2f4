// The request body of a full-duplex sidecar stream: the registration, then one JSON line per ACK, NACK or heartbeat.
//
// The sidecar sends `content-type: application/x-ndjson` and keeps its (chunked) body open while it reads the
// snapshots; its reports ride on the stream's own connection instead of calls on others (docs/control-plane.md).

import type { Readable } from 'node:stream';
import { WeftError } from '../../errors.ts';

export const NDJSON = 'application/x-ndjson';

/** The registration line may be as large as a registration call's body. */
export const MAX_FIRST_LINE_BYTES = 64 * 1024;
/** Any later line: an ACK, a heartbeat, or a NACK whose reason the sidecar cuts to 2,000 characters. */
export const MAX_LINE_BYTES = 16 * 1024;
/** Lines a stream may send at once, and per second after that: a sidecar sends one per snapshot and one per 5 s. */
export const LINE_RATE = { burst: 100, perSecond: 20 } as const;

export type StreamLine =
  | { readonly type: 'ack'; readonly version: number; readonly ok: boolean; readonly error?: string }
  | { readonly type: 'heartbeat' }
  /** a type this control plane does not know (a newer sidecar's): ignored */
  | { readonly type: 'unknown'; readonly name: string };

export function isDuplex(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase() === NDJSON;
}

/** Splits bytes into lines (without `\n` or `\r\n`; empty ones skipped), numbered from 1; throws past a line's limit. */
export class LineSplitter {
  #partial: Buffer[] = [];
  #size = 0;
  #count = 0;

  push(chunk: Buffer): { text: string; n: number }[] {
    const out: { text: string; n: number }[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      this.#take(chunk.subarray(start, nl));
      const line = Buffer.concat(this.#partial).toString('utf8').replace(/\r$/, '');
      this.#partial = [];
      this.#size = 0;
      start = nl + 1;
      if (line.trim() === '') continue;
      out.push({ text: line, n: ++this.#count });
    }
    this.#take(chunk.subarray(start));
    return out;
  }

  #take(part: Buffer): void {
    if (part.length === 0) return;
    this.#size += part.length;
    const n = this.#count + 1;
    const limit = n === 1 ? MAX_FIRST_LINE_BYTES : MAX_LINE_BYTES;
    if (this.#size > limit) throw new WeftError('WEFT_API_TOO_LARGE', `stream line ${n} is longer than ${limit} bytes`, { line: n, limit });
    this.#partial.push(part);
  }
}

/** The registration line as a JSON object, or a WEFT_API_BAD_REQUEST saying why not. */
export function parseRegistrationLine(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('expected a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new WeftError('WEFT_API_BAD_REQUEST', `stream line 1 (the registration) is not a JSON object: ${(err as Error).message}`, { line: 1 });
  }
}

/**
 * One report line of the stream registered by sidecar `id`: `{"type":"ack","id","version","ok","error"?}` or
 * `{"type":"heartbeat","id"}`. A line that speaks for another sidecar is refused (WEFT_AUTH_FORBIDDEN).
 */
export function parseStreamLine(text: string, n: number, id: string): StreamLine {
  const bad = (what: string) => new WeftError('WEFT_API_BAD_REQUEST', `stream line ${n} ${what}`, { line: n });
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw bad(`is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('is not a JSON object');
  if (typeof v.type !== 'string' || v.type === '') throw bad('has no "type" (it must be "ack" or "heartbeat")');
  if (v.id !== id) {
    throw new WeftError('WEFT_AUTH_FORBIDDEN', `stream line ${n} speaks for sidecar ${JSON.stringify(v.id)}, but this stream registered ${id}; a sidecar reports only for itself`, { line: n, id });
  }
  if (v.type === 'heartbeat') return { type: 'heartbeat' };
  if (v.type !== 'ack') return { type: 'unknown', name: v.type.slice(0, 64) };
  if (typeof v.version !== 'number' || !Number.isSafeInteger(v.version)) throw bad('(ack): "version" must be an integer');
  if (typeof v.ok !== 'boolean') throw bad('(ack): "ok" must be true or false');
  if (v.error !== undefined && typeof v.error !== 'string') throw bad('(ack): "error" must be a string');
  return { type: 'ack', version: v.version, ok: v.ok, ...(typeof v.error === 'string' ? { error: v.error.slice(0, 2000) } : {}) };
}

export interface LineHandlers {
  line(text: string, n: number): void;
  /** the body broke a rule (a line too long): reading has stopped */
  error(err: WeftError): void;
  /** the sidecar ended its body */
  end(): void;
}

/**
 * Reads a duplex stream's body: `first` settles with the registration line (or its refusal, or a deadline's);
 * the lines after it are held until `listen` is called, then handed over as they come.
 */
export function readStreamLines(req: Readable, deadlineMs: number): { first: Promise<Record<string, unknown>>; listen(h: LineHandlers): void; stop(): void } {
  const splitter = new LineSplitter();
  const held: ((h: LineHandlers) => void)[] = [];
  let handlers: LineHandlers | null = null;
  const emit = (e: (h: LineHandlers) => void) => (handlers ? e(handlers) : held.push(e));
  let settle!: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void };
  const first = new Promise<Record<string, unknown>>((resolve, reject) => (settle = { resolve, reject }));
  let registered = false;
  let stopped = false;
  const stop = () => {
    stopped = true;
    clearTimeout(deadline);
    req.off('data', onData);
    req.pause();
  };
  const fail = (err: WeftError) => {
    stop();
    if (registered) emit((h) => h.error(err));
    else settle.reject(err);
  };
  const deadline = setTimeout(() => fail(new WeftError('WEFT_API_TIMEOUT', `stream line 1 (the registration) did not arrive within ${deadlineMs / 1000} s`, { deadlineMs })), deadlineMs);
  const onData = (chunk: Buffer) => {
    try {
      for (const { text, n } of splitter.push(chunk)) {
        if (stopped) return;
        if (registered) {
          emit((h) => h.line(text, n));
          continue;
        }
        const body = parseRegistrationLine(text);
        registered = true;
        clearTimeout(deadline);
        settle.resolve(body);
      }
    } catch (err) {
      fail(err as WeftError);
    }
  };
  req.on('data', onData);
  req.once('end', () => {
    if (stopped) return;
    if (registered) emit((h) => h.end());
    else fail(new WeftError('WEFT_API_BAD_REQUEST', 'the stream body ended before its registration line (a line ends with \\n)'));
  });
  req.on('error', () => {});
  return {
    first,
    listen(h) {
      handlers = h;
      for (const e of held.splice(0)) e(h);
    },
    stop,
  };
}
