// The stream idle timeout (the Mesh's streamIdleTimeout, Envoy's stream_idle_timeout): an HTTP request or stream on
// which no byte has moved in either direction for that long is ended. No timer per request: the servers' sweeps,
// once a second, read byte counters the sockets and streams keep anyway (HTTP/1: the connection's, as it carries
// one exchange at a time; HTTP/2: the stream's), so the request path pays nothing for it.
//
// Ended how: with no answer begun, the caller gets the mesh's 408 (gRPC: UNAVAILABLE), and an HTTP/1 connection
// closes after it (RFC 9110 §15.5.9); an answer under way is cut off (gRPC: UNAVAILABLE in its trailers, else a
// reset or the connection closed), as Envoy resets the stream. Either way the relay passes it on to the next hop:
// its exchange is aborted and its connection not reused (HTTP/1), or its stream cancelled (HTTP/2).

import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { H1Response, ResponseOwner } from './h1-message.ts';
import { meshReplyH2 } from './h2-proxy.ts';
import { meshReply } from './mesh-reply.ts';

const NGHTTP2_NO_ERROR = 0;

/** What the caller reads after "weft: ". */
export function idleMessage(timeoutMs: number): string {
  return `no byte of this request or its answer moved for ${timeoutMs} ms (the mesh's streamIdleTimeout)`;
}

/**
 * Byte counters as a sweep last read them, and `since`: the number of the last sweep before they were seen to move.
 * Sweeps are numbered from 1, one a second; time is passed in, so tests move it instead of sleeping.
 */
export class QuietClock {
  since: number;
  #bytes = -1;

  constructor(since: number) {
    this.since = since;
  }

  /** Something moved (a request dispatched) after sweep `tick`. */
  restart(tick: number): void {
    this.since = tick;
  }

  /**
   * Reads `bytes` (a running count) at sweep `tick`: whether nothing has moved for `timeoutMs`. Bytes that moved
   * after sweep `since` may have moved just before sweep since+1, so only at sweep since+1+timeout/1000 is the
   * stream sure to have been idle that long: it is never ended early, and at most a second late.
   */
  quietFor(bytes: number, tick: number, timeoutMs: number): boolean {
    if (bytes !== this.#bytes) {
      this.#bytes = bytes;
      this.since = Math.max(this.since, tick - 1);
      return false;
    }
    return timeoutMs > 0 && (tick - this.since - 1) * 1000 >= timeoutMs;
  }
}

/**
 * Ends the exchange `res` of an HTTP/1 connection that has been quiet for the timeout (../http/h1-server-connection.ts).
 * With none (the connection closing after its last answer, to a caller that reads nothing), the socket is closed.
 */
export function endQuietH1(owner: ResponseOwner, res: H1Response | null, timeoutMs: number): void {
  if (!res) owner.socket.destroy();
  else if (res.headersSent) res.destroy();
  else {
    owner.keepAlive = false;
    // The relay's abort hook (res.onClose) ends the exchange with the next hop once this answer is done.
    meshReply(res, 408, 'stream-idle-timeout', idleMessage(timeoutMs));
  }
}

/**
 * node:http2 keeps a stream's DATA bytes in and out on its native handle (a StreamBase: bytesRead, bytesWritten),
 * which the stream holds under an internal symbol. Like ./llhttp.ts this leans on the pinned Node version; the
 * stream idle tests fail if it moves. Found on the first stream; null when the stream has closed.
 */
let kHandle: symbol | null | undefined;
function streamBytes(stream: ServerHttp2Stream): number | null {
  if (kHandle === undefined) kHandle = Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle') ?? null;
  const handle = kHandle ? ((stream as unknown as Record<symbol, { bytesRead?: number; bytesWritten?: number } | undefined>)[kHandle]) : undefined;
  if (handle?.bytesRead === undefined || handle.bytesWritten === undefined) return null;
  return handle.bytesRead + handle.bytesWritten;
}

class WatchedStream extends QuietClock {
  readonly stream: ServerHttp2Stream;
  readonly headers: IncomingHttpHeaders;
  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, since: number) {
    super(since);
    this.stream = stream;
    this.headers = headers;
  }
}

/** The open streams of one HTTP/2 server (../http/servers.ts), swept once a second. */
export class H2StreamIdle {
  readonly #timeoutMs: () => number;
  readonly #streams = new Set<WatchedStream>();
  #tick = 0;
  #sweep: NodeJS.Timeout | null = null;

  /** `timeoutMs` is read once a sweep (it follows the config); 0 turns the timeout off. */
  constructor(timeoutMs: () => number) {
    this.#timeoutMs = timeoutMs;
  }

  /** Watches a stream from its request head; `forget` it when it closes. */
  watch(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): WatchedStream {
    const w = new WatchedStream(stream, headers, this.#tick);
    this.#streams.add(w);
    this.#sweep ??= setInterval(() => this.#check(), 1000).unref();
    return w;
  }

  forget(w: WatchedStream): void {
    this.#streams.delete(w);
  }

  #check(): void {
    const tick = ++this.#tick;
    const ms = this.#timeoutMs();
    if (ms <= 0) return;
    for (const w of this.#streams) {
      const bytes = streamBytes(w.stream);
      if (bytes === null || !w.quietFor(bytes, tick, ms)) continue;
      this.#streams.delete(w);
      endQuietH2(w.stream, String(w.headers['content-type'] ?? '').startsWith('application/grpc'), ms);
    }
  }
}

function endQuietH2(stream: ServerHttp2Stream, grpc: boolean, timeoutMs: number): void {
  const answered = stream.headersSent;
  // A 408 (gRPC: UNAVAILABLE, trailers-only), or the answer under way cut off (see meshReplyH2). The stream's
  // close then cancels the one to the next hop (../http/h2-proxy.ts forwardH2).
  meshReplyH2(stream, 408, 'stream-idle-timeout', idleMessage(timeoutMs), grpc);
  // A caller still sending keeps its half open: once the answer has gone (node waits for it), the stream is reset
  // with NO_ERROR, as a server may do after a whole answer (RFC 9113 §8.1), so that it closes.
  if (!answered && !stream.destroyed && !stream.closed && !stream.state.remoteClose) stream.close(NGHTTP2_NO_ERROR);
}
