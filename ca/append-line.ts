// Appending one record line to a log file (the issuance journal, the spent-token ledger) so that it stays a line.

import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';

/**
 * Appends `line` and a newline in one O_APPEND write. A crash mid-append leaves a torn last line with no newline;
 * the next record would be glued onto it and lost with it when read, so one is first ended with a newline of its own.
 * `flush`: synced to disk before returning.
 */
export function appendLine(path: string, line: string, opts: { readonly mode: number; readonly flush?: boolean }): void {
  const fd = openSync(path, 'a+', opts.mode);
  try {
    const size = fstatSync(fd).size;
    const last = Buffer.alloc(1);
    const torn = size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
    writeSync(fd, `${torn ? '\n' : ''}${line}\n`);
    if (opts.flush) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
