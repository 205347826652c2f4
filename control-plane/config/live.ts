// What a config may not change while the mesh runs, checked when it is applied to a running control plane (not by
// `weft validate`, which knows no running mesh). Each problem is placed at its field, like any other config error.

import type { ReferenceInput } from './references.ts';

export interface LiveMesh {
  /** the running config's trust domain: every certificate and principal names it */
  readonly trustDomain: string;
  /** the identity the sidecars connected now for a service run as, and how many there are; null when none are */
  runningAs(service: { readonly name: string; readonly namespace: string }): { readonly identity: string; readonly sidecars: number } | null;
}

/** The running mesh as checkLive reads it: its trust domain, and the sidecars connected (service and identity). */
export function liveMesh(trustDomain: string, sidecars: readonly { readonly service: string; readonly namespace: string; readonly identity: string }[]): LiveMesh {
  return {
    trustDomain,
    runningAs: (service) => {
      const mine = sidecars.filter((e) => e.service === service.name && e.namespace === service.namespace);
      const first = mine[0];
      if (!first) return null;
      // Any other identity than the first's is the one to tell of (mixed identities only come from a change).
      const identity = (mine.find((e) => e.identity !== first.identity) ?? first).identity;
      return { identity, sidecars: mine.filter((e) => e.identity === identity).length };
    },
  };
}

export function checkLive(input: ReferenceInput, live: LiveMesh): void {
  const mesh = input.headers.find((h) => h.kind === 'Mesh');
  if (input.mesh && mesh && input.mesh.trustDomain !== live.trustDomain) {
    mesh.report.error(['spec', 'trustDomain'], `${input.mesh.trustDomain} differs from the running trust domain ${live.trustDomain}; it cannot change live`);
  }
  for (const s of input.services) {
    if (!s.valid) continue;
    const running = live.runningAs(s.item);
    if (!running || running.identity === s.item.identity) continue;
    // Callers check the peer's identity against the Service's: every call to the sidecars still holding the old
    // one would be refused (peer-identity-mismatch), and they would refuse the config meant for the new one.
    const n = running.sidecars === 1 ? '1 sidecar runs' : `${running.sidecars} sidecars run`;
    s.report.error(
      ['spec', 'serviceAccount'],
      `changes the identity of ${s.item.name}.${s.item.namespace} from ${running.identity} to ${s.item.identity} while ${n} as the old one, and every call to them would fail the identity check; stop them, apply, then start them with tokens for the new account (weft token --service ${s.item.name} --namespace ${s.item.namespace})`,
    );
  }
}
