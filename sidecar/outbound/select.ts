// Where an outbound request goes: the route's first matching rule, a weighted subset, then an endpoint.

import type { UpstreamRuntime } from '../config/runtime.ts';
import type { MeshReason } from '../http/mesh-reply.ts';
import { matchRule, pickDestination, type RequestFacts } from '../routing/route-table.ts';

export type Selection =
  | { readonly ok: true; readonly address: string; readonly subset: string | null }
  | { readonly ok: false; readonly status: number; readonly reason: MeshReason; readonly message: string };

export function select(upstream: UpstreamRuntime, facts: RequestFacts, random: number = Math.random()): Selection {
  let subset: string | null = null;
  if (upstream.routeTable) {
    const rule = matchRule(upstream.routeTable, facts);
    if (!rule) return { ok: false, status: 404, reason: 'no-route', message: `no rule of route ${upstream.route!.namespace}/${upstream.route!.name} matches ${facts.method} ${facts.path}` };
    subset = pickDestination(rule, random).subset;
  }
  const pool = upstream.subsets.get(subset ?? '');
  const endpoint = pool?.balancer.pick(pool.endpoints);
  if (!endpoint) {
    return { ok: false, status: 503, reason: 'no-healthy-upstream', message: `no endpoint of ${upstream.key}${subset ? ` (subset ${subset})` : ''} is available` };
  }
  return { ok: true, address: endpoint.address, subset };
}
