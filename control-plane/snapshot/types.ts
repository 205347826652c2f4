// The snapshot: everything one sidecar needs, as pushed on its stream. A wire contract: change it with care.

import type { AuthorizationPolicyConfig, MeshSpec, RouteConfig, ServiceConfig, TrafficPolicySpec } from '../config/types.ts';
import type { Endpoint } from '../registry.ts';

/** What a sidecar needs to call one service: where its endpoints are, who they must be, how to route. */
export interface Upstream {
  readonly service: ServiceConfig;
  /** the names an app may use for it: "catalog" (same namespace only), "catalog.default" */
  readonly hosts: readonly string[];
  /** the SPIFFE IDs a peer of this service may present; any other is refused */
  readonly expectedIdentities: readonly string[];
  readonly endpoints: readonly Endpoint[];
  /** null: all traffic to any endpoint */
  readonly route: RouteConfig | null;
  readonly trafficPolicy: TrafficPolicySpec | null;
}

export interface SnapshotBody {
  readonly service: { readonly name: string; readonly namespace: string; readonly identity: string };
  readonly mesh: MeshSpec;
  readonly inbound: {
    /** null when the service is not (yet) in the config: the sidecar serves with the mesh defaults */
    readonly service: ServiceConfig | null;
    readonly authorizationPolicies: readonly AuthorizationPolicyConfig[];
  };
  readonly upstreams: readonly Upstream[];
  /** PEM roots */
  readonly trustBundle: string;
  /** serials (uppercase hex) refused at every inbound */
  readonly revokedSerials: readonly string[];
}

/** What a sidecar holds once the deltas are assembled (see resources.ts for the wire form). */
export interface Snapshot {
  readonly version: number;
  readonly body: SnapshotBody;
}
