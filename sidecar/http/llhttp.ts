// Node's own HTTP/1 parser (llhttp, the one node:http uses), called directly.
//
// `_http_common` is an undocumented built-in, but the project pins its Node version (DESIGN.md), and the pool
// and listener tests exercise every callback used here. Strict mode (kLenientNone): ambiguous framing, bare
// LFs, duplicate Content-Length and the like are errors, never guessed at.

import { createRequire } from 'node:module';

export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  /** reads straight from a native stream (a socket's _handle), calling kOnExecute after each read */
  consume(handle: object): void;
  unconsume(): void;
  /** a copy of the bytes being parsed (only during a callback) */
  getCurrentBuffer(): Buffer;
  [callback: number]: unknown;
}
interface NativeParserClass {
  new (): NativeParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
  readonly kLenientNone: number;
}

export const { HTTPParser } = createRequire(import.meta.url)('_http_common') as { HTTPParser: NativeParserClass };
export const kOnMessageBegin = HTTPParser.kOnMessageBegin;
export const kOnHeaders = HTTPParser.kOnHeaders;
export const kOnHeadersComplete = HTTPParser.kOnHeadersComplete;
export const kOnBody = HTTPParser.kOnBody;
export const kOnMessageComplete = HTTPParser.kOnMessageComplete;
export const kOnExecute = HTTPParser.kOnExecute;

/**
 * The name of each method id llhttp gives a request. node's `methods` lists the names but not their ids, which
 * have gaps (QUERY is 46, after RTSP's ids): each name is parsed once to learn its id, so no method is ever
 * read as another.
 */
export const METHOD_NAMES: readonly (string | undefined)[] = (() => {
  const { methods } = createRequire(import.meta.url)('_http_common') as { methods: string[] };
  const names: (string | undefined)[] = [];
  const parser = new HTTPParser();
  for (const name of methods) {
    parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
    parser[kOnHeadersComplete] = (_major: number, _minor: number, _headers: unknown, id: number) => (names[id] = name);
    parser.execute(Buffer.from(`${name} / HTTP/1.1\r\nhost: a\r\n\r\n`, 'latin1'));
  }
  parser.close();
  return names;
})();
