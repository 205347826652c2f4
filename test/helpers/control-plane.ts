// Starting a real control plane on loopback for tests, with its state in a temp dir and a movable clock.

import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { ControlPlane, type ControlPlaneOptions } from '../../control-plane/control-plane.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { CaStore } from '../../ca/store.ts';
import { tempDir } from './ca.ts';

export const MESH_YAML = `apiVersion: weft/v1
kind: Mesh
metadata: {name: mesh}
spec:
  trustDomain: shop.example
---
apiVersion: weft/v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  port: 8080
---
apiVersion: weft/v1
kind: Service
metadata: {name: catalog, namespace: default}
spec:
  port: 8081
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: weft/v1
kind: Route
metadata: {name: catalog, namespace: default}
spec:
  service: catalog
  rules:
    - destinations:
        - {subset: v1, weight: 90}
        - {subset: v2, weight: 10}
`;

export interface TestControlPlane {
  readonly cp: ControlPlane;
  readonly dir: string;
  readonly configPath: string;
  /** moves the control plane's clock forward */
  advance(ms: number): void;
  operator(): ControlPlaneClient;
  anonymous(): ControlPlaneClient;
  /** a bootstrap token for `service` in namespace default, from the operator API */
  tokenFor(service: string): Promise<string>;
  /** certificates the CA has journalled so far */
  journalLength(): number;
  /** what a stub sidecar needs to reach it */
  readonly conn: { url: string; ca: string; serverIdentity: string };
}

/**
 * `frozenClock`: the control plane's clock stands still unless moved with advance(), for tests of rate limits
 * whose allowance must not come back while a slow machine runs them.
 */
export async function startControlPlane(opts: Partial<ControlPlaneOptions> & { yaml?: string; dir?: string; frozenClock?: boolean } = {}): Promise<TestControlPlane> {
  const dir = opts.dir ?? tempDir('weft-cp-');
  const configPath = join(dir, 'mesh.yaml');
  if (!opts.dir || opts.yaml) writeFileSync(configPath, opts.yaml ?? MESH_YAML);
  let offset = 0;
  const frozenAt = Date.now();
  const logs: unknown[] = [];
  const cp = await ControlPlane.start({
    stateDir: join(dir, 'state'),
    configPath,
    port: 0,
    clock: () => (opts.frozenClock ? frozenAt : Date.now()) + offset,
    log: (e) => logs.push(e),
    ...opts,
  });
  const conn = { url: cp.url, ca: cp.bundlePem, serverIdentity: cp.identity };
  const operator = () => new ControlPlaneClient({ ...conn, adminToken: cp.state.readAdminToken() });
  return {
    cp,
    dir,
    configPath,
    conn,
    advance: (ms) => (offset += ms),
    operator,
    anonymous: () => new ControlPlaneClient(conn),
    async tokenFor(service) {
      const op = operator();
      try {
        return (await op.request<{ token: string }>('POST', '/v1/tokens', { service, namespace: 'default' })).token;
      } finally {
        op.close();
      }
    },
    journalLength: () => CaStore.open(join(dir, 'state', 'ca')).journal.read().length,
  };
}
