// The outbound side's open mTLS connections, by the certificate their peer presented: each is closed when that
// certificate is revoked. The handshake checked it, but a pooled keep-alive connection or HTTP/2 session would
// otherwise go on carrying requests to it. (Expiry is not cut here: a peer renews at half its certificate's life
// while this side's pools are recycled on this side's own renewal, so a busy pooled connection routinely outlives
// the peer's old certificate by minutes, and cutting it would fail the requests on it. The peer's inbound stops
// taking new requests on a connection whose caller's certificate has expired: ../inbound/listener.ts.)

import type { TLSSocket } from 'node:tls';
import { normalizeSerial } from '../../ca/serial.ts';

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
    const cert = socket.getPeerCertificate();
    if (!cert?.serialNumber || socket.destroyed) return;
    const serial = normalizeSerial(cert.serialNumber);
    if (this.#revoked.has(serial)) return void socket.destroy(); // revoked between the handshake's check and now
    this.#open.set(socket, serial);
    socket.once('close', () => this.#open.delete(socket));
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
