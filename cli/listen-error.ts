// A port the control plane or a sidecar cannot listen on, said as an operator needs it: the address, the flag
// that chose it, and what to do (node's own error arrived as an "unexpected error" with a stack).

import { WeftError } from '../errors.ts';

/** Why a bind fails, and what to do about it; for a taken address the caller knows what is likely there. */
const WHY: Record<string, (inUse: string) => string> = {
  EADDRINUSE: (inUse) => `the address is already in use (EADDRINUSE); ${inUse}`,
  EACCES: () => 'permission denied (EACCES): ports below 1024 need privileges; pick a higher one',
  EADDRNOTAVAIL: () => 'no interface of this host has that address (EADDRNOTAVAIL); use one it has, such as 127.0.0.1',
};

/**
 * `err` as a WEFT_LISTEN_FAILED naming the flag(s) that chose its port (`flags`: flag → port), or null when it is
 * not a listener's failure to bind. `inUse` says what to do when the address is taken.
 */
export function listenError(err: unknown, flags: Readonly<Record<string, number>>, inUse: string): WeftError | null {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const why = e?.syscall === 'listen' && e.code ? WHY[e.code] : undefined;
  if (!why) return null;
  const named = Object.entries(flags).filter(([, p]) => p === e.port).map(([f]) => f);
  const where = `${e.address?.includes(':') ? `[${e.address}]` : e.address}:${e.port}`;
  return new WeftError('WEFT_LISTEN_FAILED', `cannot listen on ${where}${named.length ? ` (${named.join(', ')})` : ''}: ${why(inUse)}`, { address: e.address, port: e.port, flags: named }, { cause: err });
}
