// Server-sent events framing: the push stream is one long HTTP response of `event:/id:/data:` records.

/** One SSE record. `data` must not contain newlines (JSON.stringify without indentation never does). */
export function sseEvent(event: string, data: string, id?: number | string): string {
  return `event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${data}\n\n`;
}

/** A comment line: keeps idle proxies and NATs from closing the stream, and lets each side notice a dead peer. */
export const SSE_KEEPALIVE = ': keepalive\n\n';

export interface SseMessage {
  readonly event: string;
  readonly id?: string;
  readonly data: string;
}

/**
 * Incremental parser for the client side: feed chunks, get whole events. The unfinished record is kept as its
 * chunks and only each new chunk is searched, so an event arriving in many chunks costs its length once, not its
 * length times its chunks; `pendingChars` lets the reader cap an event that never ends.
 */
export class SseParser {
  #parts: string[] = [];
  #pending = 0;

  /** characters of the record not yet ended */
  get pendingChars(): number {
    return this.#pending;
  }

  push(chunk: string): SseMessage[] {
    const out: SseMessage[] = [];
    let rest = chunk;
    for (;;) {
      let record: string;
      // The blank line may straddle two chunks: one ends with "\n", the next starts with it.
      if (this.#pending > 0 && rest.startsWith('\n') && this.#parts.at(-1)!.endsWith('\n')) {
        record = this.#parts.join('').slice(0, -1);
        rest = rest.slice(1);
      } else {
        const end = rest.indexOf('\n\n');
        if (end === -1) break;
        record = this.#parts.join('') + rest.slice(0, end);
        rest = rest.slice(end + 2);
      }
      this.#parts = [];
      this.#pending = 0;
      const m = parseRecord(record);
      if (m) out.push(m);
    }
    if (rest.length > 0) {
      this.#parts.push(rest);
      this.#pending += rest.length;
    }
    return out;
  }
}

function parseRecord(record: string): SseMessage | null {
  let event = 'message';
  let id: string | undefined;
  const data: string[] = [];
  for (const line of record.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'event') event = value;
    else if (name === 'id') id = value;
    else if (name === 'data') data.push(value);
  }
  return data.length > 0 ? { event, id, data: data.join('\n') } : null;
}
