// Who is calling: a workload by its verified certificate, an operator by admin token or operator certificate.

import { timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { WeftError } from '../../errors.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import type { Request } from './http.ts';

export interface PeerIdentity {
  readonly identity: string;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface AuthContext {
  readonly trustDomain: string;
  readonly adminToken: string;
  readonly operatorIdentities: ReadonlySet<string>;
  isRevoked(serial: string): boolean;
  /** the control plane's clock (ms), against which certificates are valid or not */
  now(): number;
}

function tlsSocket(req: Request): TLSSocket {
  // HTTP/2 (the CLI, operators' tools) or HTTP/1.1 (sidecars; see ../client.ts): the server takes both.
  return ((req as Partial<Request>).stream?.session?.socket ?? req.socket) as TLSSocket;
}

/** A connection's certificate does not change, so its identity is read once per connection. */
const identities = new WeakMap<TLSSocket, PeerIdentity | null>();

function readPeer(socket: TLSSocket, ctx: AuthContext): PeerIdentity | null {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return null;
  if (!socket.authorized) {
    throw new WeftError('WEFT_AUTH_REQUIRED', `client certificate rejected: ${String(socket.authorizationError)}`);
  }
  const id = spiffeIdOfCertificate(cert);
  if (id.trustDomain !== ctx.trustDomain) throw new WeftError('WEFT_AUTH_FORBIDDEN', `client identity ${id.uri} is not in trust domain ${ctx.trustDomain}`);
  return { identity: id.uri, serial: cert.serialNumber, notBefore: cert.validFromDate.getTime(), notAfter: cert.validToDate.getTime() };
}

/** The caller's SPIFFE ID from a client certificate that chained to the trust bundle, or null if none was sent. */
export function peerIdentity(req: Request, ctx: AuthContext): PeerIdentity | null {
  const socket = tlsSocket(req);
  let peer = identities.get(socket);
  if (peer === undefined) {
    peer = readPeer(socket, ctx);
    identities.set(socket, peer);
  }
  // Revocation and expiry can come while a connection is open (a kept-alive one, or a TLS session resumed from
  // before), so both are checked on every call, not once per handshake.
  if (peer) requireCurrent(peer, ctx);
  return peer;
}

/**
 * Throws unless `peer`'s certificate is unrevoked and within its validity now. Called again by a handler that awaited
 * its request's body, before acting on it: the certificate may have been revoked, or expired, while the body came.
 */
export function requireCurrent(peer: PeerIdentity, ctx: AuthContext): void {
  if (ctx.isRevoked(peer.serial)) {
    throw new WeftError('WEFT_CERT_REVOKED', `client certificate ${peer.serial} for ${peer.identity} is revoked`, { serial: peer.serial });
  }
  const now = ctx.now();
  if (now >= peer.notAfter || now < peer.notBefore) {
    const when = now >= peer.notAfter ? `expired at ${new Date(peer.notAfter).toISOString()}` : `is not valid before ${new Date(peer.notBefore).toISOString()}`;
    throw new WeftError('WEFT_CERT_EXPIRED', `client certificate ${peer.serial} for ${peer.identity} ${when}; bootstrap again with a new token`, { serial: peer.serial });
  }
}

export function requireWorkload(req: Request, ctx: AuthContext): PeerIdentity {
  const peer = peerIdentity(req, ctx);
  if (!peer) throw new WeftError('WEFT_AUTH_REQUIRED', 'this call needs the workload certificate over mutual TLS; bootstrap first with a token');
  return peer;
}

/** An operator: `Authorization: Bearer <admin token>`, or a client certificate with an operator identity. */
export function requireOperator(req: Request, ctx: AuthContext): string {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer (\S+)$/.exec(auth);
    const given = Buffer.from(m?.[1] ?? '');
    const want = Buffer.from(ctx.adminToken);
    if (m && given.length === want.length && timingSafeEqual(given, want)) return 'admin-token';
    throw new WeftError('WEFT_AUTH_FORBIDDEN', 'the admin token is not valid');
  }
  const peer = peerIdentity(req, ctx);
  if (!peer) throw new WeftError('WEFT_AUTH_REQUIRED', 'the operator API needs an operator credential: the admin token (Authorization: Bearer) or an operator certificate');
  if (!ctx.operatorIdentities.has(peer.identity)) {
    throw new WeftError('WEFT_AUTH_FORBIDDEN', `${peer.identity} is not an operator identity (operators: ${[...ctx.operatorIdentities].join(', ')})`, { identity: peer.identity });
  }
  return peer.identity;
}
