// The outbound side's open mTLS connections, by the certificate chain their peer presented: each is closed when
// that certificate is revoked, or when it (or a CA certificate above it) expires. The handshake checked both, but
// a pooled keep-alive connection or HTTP/2 session would otherwise go on carrying requests long after.

import type { PeerCertificate, TLSSocket } from 'node:tls';
import { normalizeSerial } from '../../ca/serial.ts';

/** setTimeout's limit; a later expiry (a long-lived test certificate) is not scheduled: the connection will not last. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The earliest notAfter along a peer's chain (node links each certificate to its issuer, a root to itself). */
export function chainNotAfterMs(leaf: PeerCertificate): number {
  let earliest = Infinity;
  const seen = new Set<PeerCertificate>();
  for (let c: PeerCertificate | undefined = leaf; c && c.valid_to && !seen.has(c); c = (c as { issuerCertificate?: PeerCertificate }).issuerCertificate) {
    seen.add(c);
    earliest = Math.min(earliest, Date.parse(c.valid_to));
  }
  return earliest;
}

export class PeerConnections {
  /** each open connection and the normalized serial of its peer's certificate */
  readonly #open = new Map<TLSSocket, string>();
  #revoked: ReadonlySet<string> = new Set();

  /** Follows `socket` from its handshake (now, if it is already done) to its close; returns it. */
  watch<S extends TLSSocket>(socket: S): S {
    if (socket.getPeerCertificate()?.serialNumber) this.#follow(socket);
    else socket.once('secureConnect', () => this.#follow(socket));
    return socket;
  }

  #follow(socket: TLSSocket): void {
    const cert = socket.getPeerCertificate(true);
    if (!cert?.serialNumber || socket.destroyed) return;
    const serial = normalizeSerial(cert.serialNumber);
    if (this.#revoked.has(serial)) return void socket.destroy(); // revoked between the handshake's check and now
    this.#open.set(socket, serial);
    const left = chainNotAfterMs(cert) - Date.now();
    const expiry = left <= MAX_TIMER_MS ? setTimeout(() => socket.destroy(), Math.max(0, left)).unref() : null;
    socket.once('close', () => {
      this.#open.delete(socket);
      if (expiry) clearTimeout(expiry);
    });
  }

  /** The revocation list as the config says now: connections to a peer on it are closed at once. */
  setRevoked(revoked: ReadonlySet<string>): void {
    this.#revoked = revoked;
    for (const [socket, serial] of this.#open) if (revoked.has(serial)) socket.destroy();
  }

  isRevoked(serial: string): boolean {
    return this.#revoked.has(normalizeSerial(serial));
  }
}
