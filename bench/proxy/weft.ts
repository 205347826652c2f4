// The Weft pair: a control plane and two sidecar processes (`weft sidecar`), client side and server side.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Child, Children } from './children.ts';
import type { Target } from './loopback.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const WEFT = join(REPO, 'cli/weft.ts');
const TRUST_DOMAIN = 'bench.example';

function weft(args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [WEFT, ...args], { cwd: REPO, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`weft ${args.join(' ')} failed: ${(stderr || stdout || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

export interface SidecarSupport {
  /** whether `--upstream NAME=PORT` (a local port per upstream, as Consul does) is there */
  readonly upstreamFlag: boolean;
}

/** Whether this clone has a sidecar to benchmark; a message saying what is missing if not. */
export async function sidecarSupport(): Promise<SidecarSupport | { missing: string }> {
  if (!existsSync(join(REPO, 'sidecar/sidecar.ts'))) return { missing: 'the Weft sidecar is not in this clone yet (sidecar/sidecar.ts not found)' };
  try {
    // Through bin/weft, as the sidecars are run: this also fills the compile cache, so that the first
    // sidecar measured on a fresh clone does not carry the TypeScript stripper.
    const help = await new Promise<string>((resolve, reject) =>
      execFile(join(REPO, 'bin/weft'), ['sidecar', '--help'], { cwd: REPO, timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error((stderr || err.message).trim())) : resolve(stdout))),
    );
    return { upstreamFlag: help.includes('--upstream') };
  } catch (err) {
    return { missing: `'weft sidecar --help' failed, so the sidecar cannot be benchmarked: ${(err as Error).message}` };
  }
}

export interface WeftPorts {
  /** the app behind the server-side sidecar */
  readonly app: number;
  /** a port nothing listens on: the client-side workload has no app of its own here */
  readonly clientApp: number;
  /** where the load goes with --upstream server=PORT */
  readonly upstream: number;
  readonly client: { readonly inbound: number; readonly outbound: number; readonly admin: number };
  readonly server: { readonly inbound: number; readonly outbound: number; readonly admin: number };
}

export interface WeftPair {
  readonly controlPlane: Child;
  readonly client: Child;
  readonly server: Child;
  /** where the load goes: the client-side sidecar's local port for `server`, or its outbound port with Host: server */
  readonly target: Target;
  readonly admin: { readonly client: string; readonly server: string };
}

function meshYaml(ports: WeftPorts, protocol: 'http' | 'grpc'): string {
  return `apiVersion: weft/v1
kind: Mesh
metadata: {name: bench}
spec:
  trustDomain: ${TRUST_DOMAIN}
---
apiVersion: weft/v1
kind: Service
metadata: {name: client, namespace: default}
spec: {port: ${ports.clientApp}, protocol: http}
---
apiVersion: weft/v1
kind: Service
metadata: {name: server, namespace: default}
spec: {port: ${ports.app}, protocol: ${protocol}}
`;
}

async function startControlPlane(children: Children, dir: string, ports: WeftPorts, protocol: 'http' | 'grpc'): Promise<{ child: Child; url: string }> {
  writeFileSync(join(dir, 'mesh.yaml'), meshYaml(ports, protocol));
  const child = children.start('control-plane', process.execPath, [WEFT, 'control-plane', '--config', join(dir, 'mesh.yaml'), '--state', join(dir, 'state'), '--listen', '127.0.0.1:0'], { cwd: REPO, pipeStdout: true });
  const url = await new Promise<string>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`control plane printed no 'listening on URL' in 20 s (see ${child.log}); it printed: ${seen}`)), 20_000);
    // Keep reading stdout for the process's whole life, so it never blocks on a full pipe.
    child.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      seen += d;
      const m = /listening on (\S+)/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`control plane exited (${code}) before listening; see ${child.log}`));
    });
  });
  return { child, url };
}

/** Extra node flags for the sidecars, e.g. BENCH_SIDECAR_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'. */
const SIDECAR_NODE_ARGS = process.env.BENCH_SIDECAR_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

/** `protocol` grpc: the server side's service is a gRPC one, so the client side's local port for it speaks h2c. */
export async function startWeftPair(children: Children, dir: string, ports: WeftPorts, support: SidecarSupport, protocol: 'http' | 'grpc' = 'http'): Promise<WeftPair> {
  const home = join(dir, protocol === 'grpc' ? 'weft-grpc' : 'weft');
  mkdirSync(home, { recursive: true });
  const state = join(home, 'state');
  const cp = await startControlPlane(children, home, ports, protocol);
  const bundle = join(state, 'ca', 'bundle.pem');

  const sidecar = async (service: 'client' | 'server', appPort: number, p: WeftPorts['client'], extra: string[]): Promise<Child> => {
    const token = (await weft(['token', '--service', service, '--namespace', 'default', '--state', state])).trim();
    // Through bin/weft, as users run it (pinned Node, compile cache, the sidecar's heap settings).
    const args = [
      'sidecar',
      '--control-plane', cp.url, '--trust-bundle', bundle, '--token', token,
      '--service', service, '--namespace', 'default', '--app-port', String(appPort),
      '--inbound-port', String(p.inbound), '--outbound-port', String(p.outbound), '--admin-port', String(p.admin),
      ...extra,
    ];
    const env = SIDECAR_NODE_ARGS.length ? { ...process.env, NODE_OPTIONS: SIDECAR_NODE_ARGS.join(' ') } : process.env;
    return children.start(`sidecar-${service}`, join(REPO, 'bin/weft'), args, { cwd: REPO, env });
  };

  // B first, so that A's first snapshot already holds B's endpoint.
  const server = await sidecar('server', ports.app, ports.server, []);
  const client = await sidecar('client', ports.clientApp, ports.client, support.upstreamFlag ? ['--upstream', `server=${ports.upstream}`] : []);
  const target: Target = support.upstreamFlag ? { url: `http://127.0.0.1:${ports.upstream}/` } : { url: `http://127.0.0.1:${ports.client.outbound}/`, host: 'server' };
  return {
    controlPlane: cp.child,
    client,
    server,
    target,
    admin: { client: `http://127.0.0.1:${ports.client.admin}/ready`, server: `http://127.0.0.1:${ports.server.admin}/ready` },
  };
}
