// What an HTTP/1 listener says to a request its parser refused (ambiguous framing, bad header bytes, obs-fold,
// oversized head, a transfer coding other than chunked: 501): a plain 400 or 431 with the mesh's reason header, then the connection is closed, since
// after a framing error nothing more on it can be trusted.

import type { Duplex } from 'node:stream';

export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge
    ? '431 Request Header Fields Too Large'
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? '408 Request Timeout'
      : err.code === 'HPE_UNSUPPORTED_VERSION'
        ? '505 HTTP Version Not Supported'
        : err.code === 'WEFT_UNSUPPORTED_TRANSFER_CODING'
          ? '501 Not Implemented'
          : '400 Bad Request';
  const body = err.code?.startsWith('WEFT_') ? `weft: ${err.message}\n` : `weft: the mesh refused a malformed request (${err.code ?? 'parse error'})\n`;
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nx-weft-reason: bad-request\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}
