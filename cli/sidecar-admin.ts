// How the CLI reads a sidecar's admin port (/ready, /metrics) at the address the sidecar registered with the
// control plane. Admin ports bind to loopback by default, so this works from the sidecars' own host.

import { WeftError } from '../errors.ts';

/** GET http://ADDRESS/PATH, giving up after `timeoutMs`; a network failure is a WeftError naming the address. */
export async function adminGet(address: string, path: string, timeoutMs = 1500): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`http://${address}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    throw new WeftError('WEFT_CLI_SIDECAR_ADMIN', `the admin port at ${address} did not answer ${path}: ${why}`, { address });
  }
}

/** Whether the sidecar answers /ready with 200; null when it has no admin address or does not answer at all. */
export async function readiness(address: string | null | undefined): Promise<boolean | null> {
  if (!address) return null;
  try {
    return (await adminGet(address, '/ready')).status === 200;
  } catch {
    return null;
  }
}
