// Cancelling an HTTP/2 stream the mesh opened to the next hop without its request looking whole first.

import type { Http2Stream } from 'node:http2';
import { addAbortSignal } from 'node:stream';

const NGHTTP2_CANCEL = 8;

/** Aborted once and for all: addAbortSignal destroys a stream with an AbortError at once, adding no listener. */
const CANCELLED = AbortSignal.abort();

/**
 * Resets `stream` (a request the mesh sends on) with RST_STREAM and no END_STREAM before it. node:http2's
 * close(code) ends a writable side still open before it submits the reset (closeStream in lib/internal/http2/core.js),
 * and the empty DATA frame with END_STREAM that this queues is flushed ahead of the RST_STREAM (SubmitRstStream in
 * src/node_http2.cc sends pending data first): an app would take a cut-off upload for a whole request, and act on it.
 * So a request still open is destroyed with an AbortError, node:http2's reset with CANCEL that ends nothing (as a
 * request's `signal`); it drops what of the answer was not read, which every caller of this is giving up anyway.
 * A request that has ended is whole: it is closed with `code`, so what it queued still goes first.
 */
export function cancelStream(stream: Http2Stream, code: number = NGHTTP2_CANCEL): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.writableEnded) stream.close(code);
  else addAbortSignal(CANCELLED, stream);
}
