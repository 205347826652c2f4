// Revoked certificates, by serial. Revoking an identity revokes every still-valid serial the journal holds for it.

import { existsSync, readFileSync } from 'node:fs';
import { WeftError } from '../errors.ts';
import { writeFileAtomic } from '../ca/atomic-file.ts';
import type { IssuanceRecord } from '../ca/authority.ts';
import { normalizeSerial } from '../ca/serial.ts';
import { parseSpiffeId } from '../ca/spiffe-id.ts';

export interface Revocation {
  /** normalized: uppercase hex, no leading zeros */
  readonly serial: string;
  readonly identity?: string;
  /** when known; an entry is forgotten once its certificate has expired */
  readonly notAfter?: string;
  readonly revokedAt: string;
}

export class Revocations {
  readonly #path: string;
  #entries: readonly Revocation[] = [];
  #serials = new Set<string>();

  constructor(path: string, nowMs: number = Date.now()) {
    this.#path = path;
    if (!existsSync(path)) return;
    let entries: Revocation[];
    try {
      entries = (JSON.parse(readFileSync(path, 'utf8')) as { revoked: Revocation[] }).revoked;
      if (!Array.isArray(entries)) throw new Error('"revoked" is not a list');
    } catch (err) {
      throw new WeftError('WEFT_CA_STORE_CORRUPT', `${path}: not a revocation list (${(err as Error).message})`, { path });
    }
    this.#set(entries.filter((e) => !e.notAfter || Date.parse(e.notAfter) > nowMs));
  }

  get entries(): readonly Revocation[] {
    return this.#entries;
  }

  /** The serials every inbound listener refuses. */
  get serials(): ReadonlySet<string> {
    return this.#serials;
  }

  has(serial: string): boolean {
    return this.#serials.has(normalizeSerial(serial));
  }

  revokeSerial(serial: string, nowMs: number, journal: readonly IssuanceRecord[]): Revocation[] {
    const clean = serial.replace(/:/g, '');
    if (!/^[0-9a-fA-F]{1,64}$/.test(clean)) throw new WeftError('WEFT_API_BAD_REQUEST', `serial ${JSON.stringify(serial)} is not hexadecimal`, { serial });
    const s = normalizeSerial(clean);
    const issued = journal.find((r) => r.serial === s);
    // A serial this CA never issued is a mistyped one: "revoked" would leave the certificate meant still good.
    if (!issued) {
      throw new WeftError('WEFT_API_NOT_FOUND', `no certificate with serial ${s} in the issuance journal; nothing revoked (a sidecar's serial is on its admin port's /certs; --identity revokes all of a workload's)`, { serial: s });
    }
    const entry: Revocation = { serial: s, identity: issued.identity, notAfter: issued.notAfter, revokedAt: new Date(nowMs).toISOString() };
    this.#save([...this.#entries.filter((e) => e.serial !== s), entry]);
    return [entry];
  }

  /** Revokes every certificate of `identity` that is still valid; a certificate issued afterwards (with a new token) is good. */
  revokeIdentity(identity: string, nowMs: number, journal: readonly IssuanceRecord[]): Revocation[] {
    const id = parseSpiffeId(identity).uri;
    const revokedAt = new Date(nowMs).toISOString();
    const added = journal
      .filter((r) => r.identity === id && Date.parse(r.notAfter) > nowMs && !this.#serials.has(r.serial))
      .map((r) => ({ serial: r.serial, identity: id, notAfter: r.notAfter, revokedAt }));
    if (added.length === 0) {
      throw new WeftError('WEFT_API_NOT_FOUND', `no valid certificate for ${id} in the issuance journal; nothing to revoke`, { identity: id });
    }
    this.#save([...this.#entries, ...added]);
    return added;
  }

  #set(entries: readonly Revocation[]): void {
    this.#entries = entries;
    this.#serials = new Set(entries.map((e) => e.serial));
  }

  #save(entries: readonly Revocation[]): void {
    writeFileAtomic(this.#path, JSON.stringify({ revoked: entries }, null, 2) + '\n', 0o644);
    this.#set(entries);
  }
}
