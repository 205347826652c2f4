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

/** Incremental parser for the client side: feed chunks, get whole events. */
export class SseParser {
  #buffer = '';

  push(chunk: string): SseMessage[] {
    this.#buffer += chunk;
    const out: SseMessage[] = [];
    for (let end = this.#buffer.indexOf('\n\n'); end !== -1; end = this.#buffer.indexOf('\n\n')) {
      const record = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
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
      if (data.length > 0) out.push({ event, id, data: data.join('\n') });
    }
    return out;
  }
}
