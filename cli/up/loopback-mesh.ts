// Runs a planned mesh on loopback: the control plane, then one sidecar per workload (its app started by the
// sidecar once it is ready), then waits until every sidecar, app and the ingress answer. Stops in order:
// sidecars first (they drain in-flight requests and stop their apps), then the control plane.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { operatorClient } from '../operator-client.ts';
import { Child, type ChildExit } from './child.ts';
import { shown } from './summary.ts';
import type { Plan, Workload } from './plan.ts';
import { httpGet, tcpOpen, waitUntil } from './wait.ts';

const CONTROL_PLANE_START_MS = 30_000;
const SIDECAR_READY_MS = 30_000;
const APP_LISTENING_MS = 20_000;
const INGRESS_ANSWERS_MS = 20_000;
/** a sidecar drains for up to 5 s (its default --drain), then its app has exited and it closes */
const SIDECAR_STOP_GRACE_MS = 10_000;
const CONTROL_PLANE_STOP_GRACE_MS = 5_000;

export interface LoopbackMeshOptions {
  readonly plan: Plan;
  /** the port of every slot of the plan, after reservation */
  readonly ports: ReadonlyMap<string, number>;
  readonly configFile: string;
  /** absolute */
  readonly stateDir: string;
  /** the environment every child starts from */
  readonly env: NodeJS.ProcessEnv;
  /** a child exited while the mesh was not stopping */
  readonly onUnexpectedExit: (child: Child, exit: ChildExit) => void;
  /** progress lines for the operator */
  readonly progress: (line: string) => void;
  /** what the control plane prints once it listens (a change to the config file: applied, or refused and why) */
  readonly controlPlaneSays?: (line: string) => void;
}

export interface RunningSidecar {
  readonly name: string;
  readonly service: string;
  readonly namespace: string;
  readonly identity: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly pid: number;
  readonly admin: string;
  readonly ports: { readonly admin: number; readonly inbound: number; readonly outbound: number; readonly app: number; readonly upstreams: Readonly<Record<string, number>> };
  /** the app file run under the sidecar; null for the ingress */
  readonly app: string | null;
  readonly log: string;
}

export interface RunningMesh {
  readonly trustDomain: string;
  readonly controlPlane: { readonly url: string; readonly identity: string; readonly pid: number; readonly log: string; readonly metricsUrl?: string };
  readonly ingress: { readonly url: string; readonly to: string; readonly identity: string; readonly workload: string };
  readonly sidecars: readonly RunningSidecar[];
  /** things that work but not as hoped (e.g. the ingress did not answer in time) */
  readonly warnings: readonly string[];
}

export class LoopbackMesh {
  readonly #o: LoopbackMeshOptions;
  readonly #abort = new AbortController();
  #controlPlane: Child | null = null;
  readonly #sidecars = new Map<string, Child>();
  #stopping = false;

  constructor(opts: LoopbackMeshOptions) {
    this.#o = opts;
  }

  get logsDir(): string {
    return join(this.#o.stateDir, 'logs');
  }

  /** every child started so far, the control plane first */
  get children(): readonly Child[] {
    return [...(this.#controlPlane ? [this.#controlPlane] : []), ...this.#sidecars.values()];
  }

  #port(slot: string): number {
    const p = this.#o.ports.get(slot);
    if (p === undefined) throw new Error(`no port for ${slot}`);
    return p;
  }

  #start(name: string, args: readonly string[], env: NodeJS.ProcessEnv, pipeStdout = false): Child {
    this.#abort.signal.throwIfAborted();
    const child = new Child({ name, args, env, logFile: join(this.logsDir, `${name}.log`), pipeStdout });
    void child.exited.then((exit) => {
      if (!this.#stopping) this.#o.onUnexpectedExit(child, exit);
    });
    return child;
  }

  async start(): Promise<RunningMesh> {
    const { plan, stateDir } = this.#o;
    const signal = this.#abort.signal;
    const tokensDir = join(stateDir, 'tokens');

    this.#o.progress(`starting the control plane (state in ${shown(stateDir)})`);
    const cpPort = this.#port(plan.controlPlaneSlot);
    const cp = this.#start('control-plane', ['control-plane', '--config', this.#o.configFile, '--state', stateDir, '--listen', `127.0.0.1:${cpPort}`, '--metrics-listen', `127.0.0.1:${this.#port(plan.controlPlaneMetricsSlot)}`], this.#o.env, true);
    this.#controlPlane = cp;
    const listening = await this.#controlPlaneListening(cp);

    // One single-use bootstrap token per sidecar, from the operator API with the admin token in the state dir.
    const client = operatorClient({ state: stateDir });
    const tokenFiles = new Map<string, string>();
    try {
      mkdirSync(tokensDir, { recursive: true, mode: 0o700 });
      for (const w of plan.workloads) {
        const t = await client.request<{ token: string }>('POST', '/v1/tokens', { service: w.service, namespace: w.namespace });
        const file = join(tokensDir, `${w.name}.token`);
        writeFileSync(file, t.token + '\n', { mode: 0o600 });
        tokenFiles.set(w.name, file);
      }
    } finally {
      client.close();
    }

    this.#o.progress(`starting ${plan.workloads.length} sidecars: ${plan.workloads.map((w) => w.name).join(', ')}`);
    const bundle = join(stateDir, 'ca', 'bundle.pem');
    for (const w of plan.workloads) {
      const child = this.#start(w.name, this.#sidecarArgs(w, listening.url, bundle, tokenFiles.get(w.name)!), { ...this.#o.env, PORT: String(this.#port(w.slots.app)), ...w.appEnv });
      this.#sidecars.set(w.name, child);
    }

    const sidecars = await Promise.all(plan.workloads.map(async (w): Promise<RunningSidecar> => {
      const admin = this.#port(w.slots.admin);
      await waitUntil(`the ${w.name} sidecar to be ready (GET http://127.0.0.1:${admin}/ready)`, async () => {
        const r = await httpGet(admin, '/ready');
        if (r.status === 200) return true;
        throw new Error(r.body.trim());
      }, { timeoutMs: SIDECAR_READY_MS, signal });
      // The token is spent now; no need to keep it on disk.
      rmSync(tokenFiles.get(w.name)!, { force: true });
      const app = this.#port(w.slots.app);
      if (w.app) await waitUntil(`the ${w.name} app to listen on 127.0.0.1:${app}`, async () => ((await tcpOpen(app)) ? true : undefined), { timeoutMs: APP_LISTENING_MS, signal });
      return {
        name: w.name,
        service: w.service,
        namespace: w.namespace,
        identity: w.identity,
        labels: w.labels,
        pid: this.#sidecars.get(w.name)!.pid,
        admin: `http://127.0.0.1:${admin}`,
        ports: { admin, inbound: this.#port(w.slots.inbound), outbound: this.#port(w.slots.outbound), app, upstreams: Object.fromEntries(w.upstreams.map((u) => [u.service, this.#port(u.slot)])) },
        app: w.app,
        log: this.#sidecars.get(w.name)!.logFile,
      };
    }));

    // Endpoints reach the other sidecars a moment after each registers: wait until a request makes it all the way.
    const warnings: string[] = [];
    const ingressPort = this.#port(plan.ingress.slot);
    try {
      await waitUntil(`the ingress to answer GET / with a non-5xx status`, async () => {
        const r = await httpGet(ingressPort, '/');
        if (r.status < 500) return true;
        throw new Error(`${r.status} ${r.body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 160)}`);
      }, { timeoutMs: INGRESS_ANSWERS_MS, signal, everyMs: 200 });
    } catch (err) {
      if (signal.aborted) throw err;
      warnings.push(`${(err as Error).message}; the mesh is up, but check the logs`);
    }
    const ingress = sidecars.find((s) => s.name === plan.ingress.workload)!;
    return {
      trustDomain: plan.trustDomain,
      controlPlane: { ...listening, pid: cp.pid, log: cp.logFile },
      ingress: { url: `http://127.0.0.1:${ingressPort}/`, to: plan.ingress.to, identity: ingress.identity, workload: ingress.name },
      sidecars,
      warnings,
    };
  }

  /**
   * Reads the control plane's stdout (which Child also copies to its log) until it says where it listens; what
   * it prints after that goes to controlPlaneSays for the rest of its life.
   */
  async #controlPlaneListening(cp: Child): Promise<{ url: string; identity: string; metricsUrl?: string }> {
    const lines = createInterface({ input: cp.stdout! });
    const signal = this.#abort.signal;
    let timer: NodeJS.Timeout | undefined;
    let listening = false;
    try {
      return await new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`the control plane did not start within ${CONTROL_PLANE_START_MS / 1000} s; see ${cp.logFile}`)), CONTROL_PLANE_START_MS);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        let metricsUrl: string | undefined;
        lines.on('line', (line) => {
          if (listening) return void this.#o.controlPlaneSays?.(line);
          const metrics = /^control plane metrics on (\S+)/.exec(line);
          if (metrics) return void (metricsUrl = metrics[1]);
          const m = /^control plane (\S+) listening on (\S+)/.exec(line);
          if (m) {
            listening = true;
            resolve({ identity: m[1]!, url: m[2]!, ...(metricsUrl ? { metricsUrl } : {}) });
          }
        });
      });
    } finally {
      clearTimeout(timer);
      if (!listening) lines.close();
    }
  }

  #sidecarArgs(w: Workload, controlPlane: string, bundle: string, tokenFile: string): string[] {
    const labels = Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',');
    return [
      'sidecar',
      '--control-plane', controlPlane,
      '--trust-bundle', bundle,
      '--token-file', tokenFile,
      '--service', w.service,
      '--namespace', w.namespace,
      ...(labels ? ['--labels', labels] : []),
      '--app-port', String(this.#port(w.slots.app)),
      '--inbound-port', String(this.#port(w.slots.inbound)),
      '--outbound-port', String(this.#port(w.slots.outbound)),
      '--admin-port', String(this.#port(w.slots.admin)),
      ...w.upstreams.flatMap((u) => ['--upstream', `${u.service}=${this.#port(u.slot)}`]),
      ...(w.app ? ['--', process.execPath, w.app] : []),
    ];
  }

  /** Sidecars first (each drains, then stops its app), then the control plane. Safe to call more than once. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#abort.abort(new Error('weft up is stopping'));
    const sidecars = [...this.#sidecars.values()];
    if (sidecars.some((c) => c.running)) this.#o.progress(`stopping ${sidecars.filter((c) => c.running).length} sidecar(s); they drain in-flight requests first`);
    await Promise.all(sidecars.map((c) => c.stop(SIDECAR_STOP_GRACE_MS)));
    if (this.#controlPlane?.running) this.#o.progress('stopping the control plane');
    await this.#controlPlane?.stop(CONTROL_PLANE_STOP_GRACE_MS);
    rmSync(join(this.#o.stateDir, 'tokens'), { recursive: true, force: true });
  }
}
