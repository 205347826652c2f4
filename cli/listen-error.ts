// A port the control plane or a sidecar cannot listen on, said as an operator needs it: the address, the flag
// that chose it, and what to do (node's own error arrived as an "unexpected error" with a stack).

import { WeftError } from '../errors.ts';

/** Why a bind fails, and what to do about it; for a taken address the caller knows what is likely there. */
const WHY: Record<string, (inUse: string) => string> = {
  EADDRINUSE: (inUse) => `the address is already in use (EADDRINUSE); ${inUse}`,
  EACCES: () => 'permission denied (EACCES): ports below 1024 need privileges; pick a higher one',
  EADDRNOTAVAIL: () => 'no interface of this host has that address (EADDRNOTAVAIL); use one it has, such as 127.0.0.1',
  // the host, when a name, is looked up first
  ENOTFOUND: () => 'no such host (ENOTFOUND); give an address of this host, such as 127.0.0.1, or a name that resolves to one',
  EAI_AGAIN: () => 'the host name could not be looked up (EAI_AGAIN); give an address of this host, such as 127.0.0.1',
};

/**
 * `err` as a WEFT_LISTEN_FAILED naming the flag(s) that chose its port (`flags`: flag → port), or null when it is
 * not a listener's failure to bind. `inUse` says what to do when the address is taken.
 */
export function listenError(err: unknown, flags: Readonly<Record<string, number>>, inUse: string): WeftError | null {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const why = (e?.syscall === 'listen' || e?.syscall === 'getaddrinfo') && e.code ? WHY[e.code] : undefined;
  if (!why) return null;
  // node leaves the port out of its error when it was 0, and a failed lookup has neither address nor port: with
  // one flag given, they are that flag's.
  const given = Object.entries(flags);
  const port = e.port ?? (given.length === 1 ? given[0]![1] : undefined);
  const address = e.address ?? e.hostname;
  const named = given.filter(([, p]) => p === port).map(([f]) => f);
  const where = `${address?.includes(':') ? `[${address}]` : address}${port === undefined ? '' : `:${port}`}`;
  return new WeftError('WEFT_LISTEN_FAILED', `cannot listen on ${where}${named.length ? ` (${named.join(', ')})` : ''}: ${why(inUse)}`, { address, port, flags: named }, { cause: err });
}
