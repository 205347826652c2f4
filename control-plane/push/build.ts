// The pusher's builder: one service's snapshot at a version, with what services share built once per version.

import type { MeshConfig } from '../config/types.ts';
import type { Endpoint } from '../registry.ts';
import { buildSnapshot, buildUpstreams, type SnapshotInputs } from '../snapshot/build.ts';
import { toResources } from '../snapshot/resources.ts';
import type { Upstream } from '../snapshot/types.ts';
import { built, type BuiltResource, type BuiltSnapshot } from './pusher.ts';

/** What a snapshot is built from, read when a push builds it. */
export interface PushSources {
  config(): MeshConfig;
  endpoints(service: string, namespace: string): readonly Endpoint[];
  trustBundle(): string;
  revokedSerials(): readonly string[];
}

/**
 * `build` for SnapshotPusher, keyed "service.namespace". Per push (version): each namespace's upstream list is
 * built once and each shared resource serialised once.
 */
export function pushBuilder(sources: PushSources): (key: string, version: number) => BuiltSnapshot {
  let memo = { version: -1, upstreams: new Map<string, readonly Upstream[]>(), json: new WeakMap<object, BuiltResource>() };
  return (key, version) => {
    if (memo.version !== version) memo = { version, upstreams: new Map(), json: new WeakMap() };
    const [name, namespace] = key.split('.') as [string, string];
    const inputs: SnapshotInputs = {
      config: sources.config(),
      endpoints: (s, ns) => sources.endpoints(s, ns),
      trustBundle: sources.trustBundle(),
      revokedSerials: sources.revokedSerials(),
      upstreams: (ns) => {
        let list = memo.upstreams.get(ns);
        if (!list) memo.upstreams.set(ns, (list = buildUpstreams(inputs, ns)));
        return list;
      },
    };
    return built(toResources(buildSnapshot(inputs, name, namespace)), memo.json);
  };
}
