// A snapshot as named resources, so a push carries only what changed (like delta xDS) and the sidecar
// reassembles the whole. A route change for one service sends that one upstream, not the mesh.

import type { SnapshotBody, Upstream } from './types.ts';

const UPSTREAM = 'upstream:';
// Endpoints are their own resource: a sidecar joining or leaving resends one service's endpoint list, not its
// routes and policies (the split Envoy makes between CDS and EDS).
const ENDPOINTS = 'endpoints:';

/** The wire event: `event: snapshot`, data `{"version":N,"full":bool,"resources":{name: value},"removed":[name]}`. */
export interface SnapshotDelta {
  readonly version: number;
  /** true: `resources` is everything, forget what you had */
  readonly full: boolean;
  readonly resources: Readonly<Record<string, unknown>>;
  readonly removed: readonly string[];
}

/** The same upstream object shared by many snapshots splits into the same two objects, so they serialise once. */
const splits = new WeakMap<Upstream, { rest: Omit<Upstream, 'endpoints'>; endpoints: Upstream['endpoints'] }>();

export function toResources(body: SnapshotBody): Map<string, unknown> {
  const r = new Map<string, unknown>([
    ['service', body.service],
    ['mesh', body.mesh],
    ['inbound', body.inbound],
    ['trustBundle', body.trustBundle],
    ['revokedSerials', body.revokedSerials],
  ]);
  for (const u of body.upstreams) {
    let split = splits.get(u);
    if (!split) {
      const { endpoints, ...rest } = u;
      splits.set(u, (split = { rest, endpoints }));
    }
    r.set(`${UPSTREAM}${u.service.name}.${u.service.namespace}`, split.rest);
    r.set(`${ENDPOINTS}${u.service.name}.${u.service.namespace}`, split.endpoints);
  }
  return r;
}

/** Applies a delta to what the sidecar holds. Throws (so the sidecar NACKs) if the result is incomplete. */
export function assemble(previous: ReadonlyMap<string, unknown> | null, delta: SnapshotDelta): { resources: Map<string, unknown>; body: SnapshotBody } {
  const resources = new Map(delta.full || !previous ? [] : previous);
  for (const name of delta.removed) resources.delete(name);
  for (const [name, value] of Object.entries(delta.resources)) resources.set(name, value);
  const need = (name: string) => {
    if (!resources.has(name)) throw new Error(`snapshot ${delta.version} lacks resource "${name}"`);
    return resources.get(name);
  };
  const upstreams = [...resources.entries()]
    .filter(([k]) => k.startsWith(UPSTREAM))
    // Code-unit order, not localeCompare: this runs in every sidecar, and the first localeCompare loads ICU's
    // collation data (about 5 MB of RSS). The order only has to be the same every time.
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => ({ ...(v as Omit<Upstream, 'endpoints'>), endpoints: need(ENDPOINTS + k.slice(UPSTREAM.length)) as Upstream['endpoints'] }));
  const body = {
    service: need('service'),
    mesh: need('mesh'),
    inbound: need('inbound'),
    trustBundle: need('trustBundle'),
    revokedSerials: need('revokedSerials'),
    upstreams,
  } as SnapshotBody;
  return { resources, body };
}
