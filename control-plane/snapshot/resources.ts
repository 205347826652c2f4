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

/** The resources a delta leaves: what the control plane now believes the sidecar holds. Throws only on a delta that is not one. */
export function merge(previous: ReadonlyMap<string, unknown> | null, delta: SnapshotDelta): Map<string, unknown> {
  if (typeof delta.full !== 'boolean') throw new Error(`snapshot ${delta.version}: "full" is not true or false`);
  if (typeof delta.resources !== 'object' || delta.resources === null || Array.isArray(delta.resources)) throw new Error(`snapshot ${delta.version}: "resources" is not an object`);
  if (!Array.isArray(delta.removed) || !delta.removed.every((n) => typeof n === 'string')) throw new Error(`snapshot ${delta.version}: "removed" is not a list of names`);
  const resources = new Map(delta.full || !previous ? [] : previous);
  // A name it does not hold leaves the same set either way.
  for (const name of delta.removed) resources.delete(name);
  for (const [name, value] of Object.entries(delta.resources)) resources.set(name, value);
  return resources;
}

const SINGLE = new Set(['service', 'mesh', 'inbound', 'trustBundle', 'revokedSerials']);

/** Resources of a kind this code does not know (a newer control plane's): left out of the body, to be reported. */
export function unknownKinds(resources: ReadonlyMap<string, unknown>): string[] {
  return [...resources.keys()].filter((name) => !SINGLE.has(name) && !name.startsWith(UPSTREAM) && !name.startsWith(ENDPOINTS));
}

/**
 * The snapshot the resources make, without kinds of resource this code does not know (see unknownKinds). Throws
 * (so the sidecar NACKs) if they are incomplete or hold endpoints of an upstream they lack.
 */
export function bodyOf(resources: ReadonlyMap<string, unknown>, version: number): SnapshotBody {
  for (const name of resources.keys()) {
    if (name.startsWith(ENDPOINTS) && !resources.has(UPSTREAM + name.slice(ENDPOINTS.length))) throw new Error(`snapshot ${version} holds "${name}" but no "${UPSTREAM}${name.slice(ENDPOINTS.length)}"`);
  }
  const need = (name: string) => {
    if (!resources.has(name)) throw new Error(`snapshot ${version} lacks resource "${name}"`);
    return resources.get(name);
  };
  const upstreams = [...resources.entries()]
    .filter(([k]) => k.startsWith(UPSTREAM))
    // Code-unit order, not localeCompare: this runs in every sidecar, and the first localeCompare loads ICU's
    // collation data (about 5 MB of RSS). The order only has to be the same every time.
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => ({ ...(v as Omit<Upstream, 'endpoints'>), endpoints: need(ENDPOINTS + k.slice(UPSTREAM.length)) as Upstream['endpoints'] }));
  return {
    service: need('service'),
    mesh: need('mesh'),
    inbound: need('inbound'),
    trustBundle: need('trustBundle'),
    revokedSerials: need('revokedSerials'),
    upstreams,
  } as SnapshotBody;
}

/** Applies a delta to what the sidecar holds. Throws (so the sidecar NACKs) if the result is not a whole snapshot. */
export function assemble(previous: ReadonlyMap<string, unknown> | null, delta: SnapshotDelta): { resources: Map<string, unknown>; body: SnapshotBody } {
  const resources = merge(previous, delta);
  return { resources, body: bodyOf(resources, delta.version) };
}
