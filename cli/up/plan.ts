// What `weft up` runs for a mesh config, and on which ports: a pure function of the config, the apps found
// beside it and the base port, so the same file and base port always give the same URLs.
//
//   base+10            the control plane (its usual port, 15010, for the default base)
//   base+80            the ingress: plain HTTP in, mTLS on to the ingress's target service
//   base+100+10*i      workload i, in config order (one per subset of a service, else one):
//                      +0 admin, +1 inbound, +2 outbound (the app's HTTP_PROXY), +3 app, +4… one port per upstream

import { WeftError } from '../../errors.ts';
import type { MeshConfig, ServiceConfig } from '../../control-plane/config/types.ts';

export const DEFAULT_BASE_PORT = 15000;
const CONTROL_PLANE_OFFSET = 10;
/** The control plane's Prometheus metrics (istiod's are on 15014 too). */
const CONTROL_PLANE_METRICS_OFFSET = 14;
const INGRESS_OFFSET = 80;
const FIRST_BLOCK_OFFSET = 100;
/** ports per workload before its upstream ports */
const FIXED_SLOTS = 4;

export interface WorkloadSlots {
  readonly admin: string;
  readonly inbound: string;
  readonly outbound: string;
  readonly app: string;
}

export interface Workload {
  /** "web", "catalog-v1": names its log file and its line in the summary */
  readonly name: string;
  readonly service: string;
  readonly namespace: string;
  readonly identity: string;
  readonly labels: Readonly<Record<string, string>>;
  /** the app run under the sidecar (`node FILE`); null for the ingress, which has none */
  readonly app: string | null;
  /** extra environment for the app (VERSION from the subset's `version` label) */
  readonly appEnv: Readonly<Record<string, string>>;
  /** per-upstream local ports (`--upstream NAME=PORT`): the service and the port slot it takes */
  readonly upstreams: readonly { readonly service: string; readonly slot: string }[];
  /** port slots of the sidecar's listeners and of the app */
  readonly slots: WorkloadSlots;
}

export interface Plan {
  readonly trustDomain: string;
  readonly controlPlaneSlot: string;
  readonly controlPlaneMetricsSlot: string;
  readonly ingress: { readonly workload: string; readonly to: string; readonly slot: string };
  readonly workloads: readonly Workload[];
  /** every port slot with its preferred port, in order */
  readonly ports: ReadonlyMap<string, number>;
  /** services in the config that get no process, and why */
  readonly skipped: readonly { readonly service: string; readonly reason: string }[];
}

export interface PlanOptions {
  readonly basePort: number;
  /** the app file of a service, or null if it has none */
  readonly appFor: (service: ServiceConfig) => string | null;
  /** the Service the ingress runs as (default "ingress") */
  readonly ingressService?: string;
  /** the Service the ingress port forwards to (default "web") */
  readonly ingressTo?: string;
  /** the config file, for messages */
  readonly file: string;
}

/** How an app names another service on its upstream port: bare in its own namespace, else "name.namespace". */
function upstreamName(from: ServiceConfig, to: ServiceConfig): string {
  return to.namespace === from.namespace ? to.name : `${to.name}.${to.namespace}`;
}

function workloadName(s: ServiceConfig, subset: string | null): string {
  const base = s.namespace === 'default' ? s.name : `${s.name}.${s.namespace}`;
  return subset ? `${base}-${subset}` : base;
}

export function planMesh(config: MeshConfig, opts: PlanOptions): Plan {
  const ingressName = opts.ingressService ?? 'ingress';
  const ingressTo = opts.ingressTo ?? 'web';
  const ingress = config.services.find((s) => s.name === ingressName);
  if (!ingress) {
    throw new WeftError('WEFT_CONFIG_INVALID', `${opts.file}: no Service ${JSON.stringify(ingressName)}; weft up runs the ingress as a sidecar of that service (identity spiffe://${config.mesh.trustDomain}/ns/default/sa/${ingressName}): add a Service for it, as examples/shop/mesh.yaml does`, { file: opts.file });
  }
  const withApps = config.services.filter((s) => s !== ingress).map((s) => ({ service: s, app: opts.appFor(s) }));
  const target = withApps.find((w) => w.service.name === ingressTo && w.service.namespace === ingress.namespace);
  if (!target?.app) {
    throw new WeftError('WEFT_CONFIG_INVALID', `${opts.file}: the ingress goes to Service ${JSON.stringify(ingressTo)}, but ${target ? 'it has no app to run' : `there is no such Service in namespace ${ingress.namespace}`}`, { file: opts.file });
  }
  const running = withApps.filter((w) => w.app !== null);
  // Each app workload gets a port for every other service with an app.
  const blockSize = Math.max(10, Math.ceil((FIXED_SLOTS + running.length - 1) / 10) * 10);

  const ports = new Map<string, number>();
  const controlPlaneSlot = 'control plane';
  const controlPlaneMetricsSlot = 'control plane metrics';
  const ingressSlot = 'ingress';
  ports.set(controlPlaneSlot, opts.basePort + CONTROL_PLANE_OFFSET);
  ports.set(controlPlaneMetricsSlot, opts.basePort + CONTROL_PLANE_METRICS_OFFSET);
  ports.set(ingressSlot, opts.basePort + INGRESS_OFFSET);

  const workloads: Workload[] = [];
  const add = (service: ServiceConfig, subset: { name: string; labels: Readonly<Record<string, string>> } | null, app: string | null, upstreams: readonly ServiceConfig[]) => {
    const name = workloadName(service, subset?.name ?? null);
    let port = opts.basePort + FIRST_BLOCK_OFFSET + blockSize * workloads.length;
    const slot = (what: string) => {
      const id = `${name} ${what}`;
      ports.set(id, port++);
      return id;
    };
    const slots: WorkloadSlots = { admin: slot('admin'), inbound: slot('inbound'), outbound: slot('outbound'), app: slot('app') };
    const labels = subset?.labels ?? {};
    workloads.push({
      name,
      service: service.name,
      namespace: service.namespace,
      identity: service.identity,
      labels,
      app,
      appEnv: labels.version ? { VERSION: labels.version } : {},
      upstreams: app === null
        ? [{ service: upstreamName(service, target.service), slot: ingressSlot }]
        : upstreams.map((u) => ({ service: upstreamName(service, u), slot: slot(`→ ${upstreamName(service, u)}`) })),
      slots,
    });
  };
  for (const { service, app } of running) {
    const others = running.map((r) => r.service).filter((s) => s !== service);
    if (service.subsets.length === 0) add(service, null, app, others);
    for (const subset of service.subsets) add(service, subset, app, others);
  }
  add(ingress, null, null, []);

  const last = Math.max(...ports.values());
  if (opts.basePort < 1024 || last > 65535) {
    throw new WeftError('WEFT_CLI_USAGE', `--base-port ${opts.basePort}: this mesh needs ports ${opts.basePort}..${last}; pick a base from 1024 to ${65535 - (last - opts.basePort)}`);
  }
  return {
    trustDomain: config.mesh.trustDomain,
    controlPlaneSlot,
    controlPlaneMetricsSlot,
    ingress: { workload: workloads.at(-1)!.name, to: target.service.name, slot: ingressSlot },
    workloads,
    ports,
    skipped: withApps.filter((w) => w.app === null).map((w) => ({ service: `${w.service.name}.${w.service.namespace}`, reason: 'no app for it' })),
  };
}
