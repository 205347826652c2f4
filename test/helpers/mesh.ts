// A real mesh on loopback for sidecar tests: a control plane process and sidecar processes (bin/weft), with
// free ports, readiness waits, and everything stopped at teardown.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { tempDir } from './ca.ts';
import { WEFT } from './cli.ts';

export async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface Proc {
  readonly child: ChildProcess;
  /** stderr so far (JSON log lines) */
  logs(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export function run(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(WEFT, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    logs: () => err + out,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface SidecarProc extends Proc {
  readonly service: string;
  readonly ports: { inbound: number; outbound: number; admin: number; app: number; upstreams: Record<string, number> };
  admin(path: string): Promise<{ status: number; body: string }>;
}

export interface SidecarSpec {
  readonly service: string;
  readonly namespace?: string;
  readonly labels?: Record<string, string>;
  readonly appPort: number;
  readonly upstreams?: string[];
  readonly command?: string[];
  readonly env?: NodeJS.ProcessEnv;
  /** don't wait for /ready */
  readonly noWait?: boolean;
  /** this bootstrap token instead of a fresh one for the service */
  readonly token?: string;
}

export interface TestMesh {
  readonly dir: string;
  readonly state: string;
  readonly url: string;
  readonly bundleFile: string;
  readonly controlPlane: Proc;
  token(service: string, namespace?: string): Promise<string>;
  sidecar(spec: SidecarSpec): Promise<SidecarProc>;
  /** kills the control plane process (traffic must go on) */
  killControlPlane(): Promise<void>;
  apply(yaml: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startMesh(yaml: string, opts: { controlPlaneEnv?: NodeJS.ProcessEnv } = {}): Promise<TestMesh> {
  const dir = tempDir('weft-mesh-');
  const state = join(dir, 'state');
  const config = join(dir, 'mesh.yaml');
  writeFileSync(config, yaml);
  const cp = run(['control-plane', '--config', config, '--state', state, '--listen', '127.0.0.1:0'], opts.controlPlaneEnv);
  const url = await waitFor('the control plane', () => /listening on (\S+)/.exec(cp.logs())?.[1], 20_000);
  const procs: Proc[] = [cp];
  const mesh: TestMesh = {
    dir,
    state,
    url,
    bundleFile: join(state, 'ca', 'bundle.pem'),
    controlPlane: cp,
    async token(service, namespace = 'default') {
      const { weft } = await import('./cli.ts');
      const r = await weft(['token', '--service', service, '--namespace', namespace, '--state', state]);
      if (r.code !== 0) throw new Error(r.stderr);
      return r.stdout.trim();
    },
    async sidecar(spec) {
      // Port 0 everywhere: the sidecar binds free ports itself (no race with other tests) and reports them
      // in its "sidecar ready" log line.
      const ports = { inbound: 0, outbound: 0, admin: 0, app: spec.appPort, upstreams: {} as Record<string, number> };
      const upstreamFlags = (spec.upstreams ?? []).flatMap((u) => ['--upstream', `${u}=0`]);
      const args = [
        'sidecar', '--control-plane', url, '--trust-bundle', mesh.bundleFile, '--token', spec.token ?? (await mesh.token(spec.service, spec.namespace)),
        '--service', spec.service, '--namespace', spec.namespace ?? 'default', '--app-port', String(spec.appPort),
        '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0',
        '--labels', Object.entries(spec.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','), ...upstreamFlags,
        ...(spec.command ? ['--', ...spec.command] : []),
      ];
      const p = run(args, spec.env);
      procs.push(p);
      const admin = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${ports.admin}${path}`);
        return { status: res.status, body: await res.text() };
      };
      if (!spec.noWait) {
        const ready = await waitFor(`sidecar ${spec.service} ready`, () => {
          if (p.child.exitCode !== null) throw new Error(`sidecar exited ${p.child.exitCode}: ${p.logs()}`);
          const line = p.logs().split('\n').find((l) => l.includes('"msg":"sidecar ready"'));
          return line ? (JSON.parse(line) as { inbound: number; outbound: number; admin: number; upstreams: Record<string, number> }) : undefined;
        }, 45_000);
        Object.assign(ports, { inbound: ready.inbound, outbound: ready.outbound, admin: ready.admin, upstreams: ready.upstreams });
      }
      return { ...p, service: spec.service, ports, admin };
    },
    async killControlPlane() {
      await cp.kill('SIGKILL');
    },
    async apply(text) {
      const { weft } = await import('./cli.ts');
      const f = join(dir, `apply-${Date.now()}.yaml`);
      writeFileSync(f, text);
      const r = await weft(['apply', '-f', f, '--state', state]);
      if (r.code !== 0) throw new Error(r.stderr);
    },
    async stop() {
      await Promise.all(procs.map((p) => p.kill('SIGKILL')));
    },
  };
  return mesh;
}
