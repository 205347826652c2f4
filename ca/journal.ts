// The issuance journal: one JSON line per certificate the CA signed, appended, never rewritten.

import { existsSync, readFileSync } from 'node:fs';
import { WeftError } from '../errors.ts';
import type { IssuanceRecord } from './authority.ts';
import { appendLine } from './append-line.ts';

export class IssuanceJournal {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** O_APPEND writes of one short line are not interleaved, so concurrent issuers never corrupt each other. */
  append(record: IssuanceRecord): void {
    appendLine(this.path, JSON.stringify(record), { mode: 0o600 });
  }

  /**
   * Every record. A torn line (a crash mid-append: a record cut short, last, or ended by the next append) is
   * skipped; any other bad line is corruption.
   */
  read(): IssuanceRecord[] {
    if (!existsSync(this.path)) return [];
    const lines = readFileSync(this.path, 'utf8').split('\n');
    const records: IssuanceRecord[] = [];
    for (const [i, line] of lines.entries()) {
      if (line === '') continue;
      try {
        records.push(JSON.parse(line) as IssuanceRecord);
      } catch {
        if (i === lines.length - 1) break;
        if (line.startsWith('{"') && !line.endsWith('}')) continue;
        throw new WeftError('WEFT_CA_STORE_CORRUPT', `${this.path}:${i + 1}: journal line is not JSON`, { path: this.path, line: i + 1 });
      }
    }
    return records;
  }

  /** The latest notAfter among certificates signed by the issuer with this SHA-256 fingerprint, or null. */
  lastNotAfter(issuerFingerprint: string): Date | null {
    let last: number | null = null;
    for (const r of this.read()) {
      if (r.issuer !== issuerFingerprint) continue;
      const t = Date.parse(r.notAfter);
      if (last === null || t > last) last = t;
    }
    return last === null ? null : new Date(last);
  }
}
