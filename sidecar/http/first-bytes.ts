// A listener that must see a connection's first bytes before it knows which server takes it (TLS or plaintext on
// a PERMISSIVE inbound; HTTP/1 or h2c on the main outbound port) holds the connection outside both servers, and so
// outside their timeouts, until they come.

import type { Socket } from 'node:net';

/** How long a connection may stay silent before its protocol is known: the request head timeout's 10 s. */
export const FIRST_BYTES_MS = 10_000;

/** Calls `then` with the connection's first bytes, the socket paused; closes a connection that sends none in `ms`. */
export function onFirstBytes(socket: Socket, then: (first: Buffer) => void, ms = FIRST_BYTES_MS): void {
  const silent = setTimeout(() => socket.destroy(), ms);
  socket.once('close', () => clearTimeout(silent));
  socket.once('data', (first: Buffer) => {
    clearTimeout(silent);
    socket.pause();
    then(first);
  });
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

/** Whether a connection's first bytes begin HTTP/2's client preface (h2c with prior knowledge), as far as they go. */
export function isH2Preface(first: Buffer): boolean {
  const n = Math.min(first.length, H2_PREFACE.length);
  return first.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
}
