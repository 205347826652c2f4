// Certificate serial numbers: random on issuance, one normalized spelling everywhere they are compared.

import { randomBytes } from 'node:crypto';

/**
 * A random positive serial carrying 128 bits of randomness (RFC 5280 allows 20 octets; CA/B asks for ≥64 bits).
 * DER integers are minimal and signed, so a leading 0x00 is added exactly when the top bit is set, and a
 * draw whose first byte is 0x00 is redrawn (it would need a non-minimal encoding).
 */
export function randomSerial(): string {
  for (;;) {
    const bytes = randomBytes(16);
    if (bytes[0] === 0) continue;
    const hex = bytes.toString('hex');
    return bytes[0]! & 0x80 ? `00${hex}` : hex;
  }
}

/** Serial as printed by openssl and node (uppercase hex, no leading 00) so journal, logs and revocation agree. */
export function normalizeSerial(serial: string): string {
  return serial.replace(/^(00)+/, '').toUpperCase();
}
