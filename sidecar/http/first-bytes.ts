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
