// weft up: run a whole mesh on loopback (control plane, a sidecar and app per workload, an ingress) until Ctrl-C.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { WeftError } from '../../errors.ts';
import { ConfigError, formatIssue, loadMeshConfigFile } from '../../control-plane/config/index.ts';
import { DEFAULT_STATE_DIR } from '../../control-plane/state-dir.ts';
import { liveHolder } from '../../control-plane/state-lock.ts';
import { optional, parse } from '../args.ts';
import type { Command } from '../command.ts';
import type { Child, ChildExit } from '../up/child.ts';
import { LoopbackMesh } from '../up/loopback-mesh.ts';
import { DEFAULT_BASE_PORT, planMesh } from '../up/plan.ts';
import { reservePorts } from '../up/ports.ts';
import { shown, summaryJson, summaryText, type Summary } from '../up/summary.ts';

type Outcome =
  | { readonly kind: 'signal'; readonly signal: NodeJS.Signals }
  | { readonly kind: 'exit'; readonly child: Child; readonly exit: ChildExit }
  | { readonly kind: 'error'; readonly error: Error };

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * The children's environment: this one (NODE_COMPILE_CACHE included) minus what would send loopback traffic
 * elsewhere or override the flags `weft up` gives: the operator's own proxy settings and WEFT_* defaults.
 */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(https?|all|grpc|no|no_grpc)_proxy$/i.test(k) || k.startsWith('WEFT_')) continue;
    env[k] = v;
  }
  // The sidecar sets NO_PROXY for its app but not no_proxy, which grpc-js (and curl) read: without it grpc-js
  // sends the app's call to 127.0.0.1:<upstream port> through HTTP_PROXY as a CONNECT.
  env.no_proxy = 'localhost,127.0.0.1,::1';
  return env;
}

/** Whether `pid` is alive and runs weft (not a recycled pid; without /proc, alive is enough). */
function isWeft(pid: unknown): pid is number {
  if (typeof pid !== 'number' || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    const cmdline = `/proc/${pid}/cmdline`;
    return !existsSync(cmdline) || readFileSync(cmdline, 'utf8').includes('weft');
  } catch {
    return false;
  }
}

function readRecord(file: string): { pid?: unknown; controlPlane?: { pid?: unknown }; sidecars?: { pid?: unknown }[] } {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ReturnType<typeof readRecord>;
  } catch {
    return {};
  }
}

/** Refuses to start over a running weft up or control plane, or over children a killed weft up left behind. */
function checkStateFree(stateDir: string): void {
  const busy = (what: string, pid: number) => new WeftError('WEFT_CLI_USAGE', `${what} (pid ${pid}) is already running with the state dir ${shown(stateDir)}; stop it first (kill ${pid}), or pass another --state`, { pid });
  const upRecord = readRecord(join(stateDir, 'up.json'));
  if (isWeft(upRecord.pid)) throw busy('weft up', upRecord.pid);
  // Each child leads its own process group, so killing the group also takes a sidecar's app.
  const left = [upRecord.controlPlane?.pid, ...(upRecord.sidecars ?? []).map((s) => s.pid)].filter(isWeft);
  if (left.length) {
    throw new WeftError('WEFT_CLI_USAGE', `a weft up that was killed left ${left.length} process(es) running with the state dir ${shown(stateDir)}; stop them first: kill -- ${left.map((p) => `-${p}`).join(' ')}`, { pids: left });
  }
  // The lock names a control plane from the moment it starts; control-plane.json only once it listens.
  const holder = liveHolder(join(stateDir, 'control-plane.lock'));
  if (holder) throw busy('a control plane', holder.pid);
  const cp = readRecord(join(stateDir, 'control-plane.json')).pid;
  if (isWeft(cp)) throw busy('a control plane', cp);
}

function describe(exit: ChildExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`;
}

export const up: Command = {
  name: 'up',
  help: `Usage: weft up FILE [--state DIR] [--base-port ${DEFAULT_BASE_PORT}] [--ingress-to web] [--json]

Runs the whole mesh of FILE on loopback until Ctrl-C: the control plane (and its CA), one sidecar per workload
with its app behind it, and an ingress. A workload is a Service with an app beside the config,
apps/<service>.ts (one per subset, with VERSION=<the subset's version label>); the Service named "ingress" runs
as a sidecar with no app, and plain HTTP to its port goes over mTLS to --ingress-to (default web).
Once every sidecar is ready and the ingress answers, it prints where to go and what to try.

  --state DIR        the control plane's state (default ${DEFAULT_STATE_DIR}); its CA is reused on the next start.
                     Each child's output goes to DIR/logs/<name>.log
  --base-port N      ports are planned from N (default ${DEFAULT_BASE_PORT}): control plane N+10, ingress N+80,
                     workload i at N+100+10i (admin, inbound, outbound, app, upstreams); a taken port is
                     swapped for a free one, and the summary says so
  --ingress-to SVC   the Service plain HTTP on the ingress port goes to (default web)
  --json             print the summary (URLs, ports, pids, logs) as one JSON document

Apps reach other services through HTTP_PROXY (http://catalog/...) or a local port per service,
WEFT_UPSTREAM_<SERVICE>_PORT; they listen on PORT. Ctrl-C or SIGTERM stops the sidecars (they drain), then the
control plane, and exits 0; if any child dies, weft up names it, shows the end of its log, stops the rest and
exits 1.

Example: weft up examples/shop/mesh.yaml        (npm start)`,
  async run(argv, out) {
    const { values, positionals } = parse('up', argv, { file: { type: 'string', short: 'f' }, state: { type: 'string' }, 'base-port': { type: 'string' }, 'ingress-to': { type: 'string' } }, true);
    const flag = optional(values, 'file');
    if ((flag === undefined ? positionals.length !== 1 : positionals.length !== 0) || flag === '') {
      throw new WeftError('WEFT_CLI_USAGE', "weft up: give one mesh config file, e.g. weft up examples/shop/mesh.yaml; see 'weft up --help'");
    }
    const file = flag ?? positionals[0]!;
    const baseText = optional(values, 'base-port') ?? String(DEFAULT_BASE_PORT);
    if (!/^\d+$/.test(baseText)) throw new WeftError('WEFT_CLI_USAGE', `weft up: --base-port ${JSON.stringify(baseText)} is not a port number`);
    const stateFlag = optional(values, 'state');
    const stateDir = resolve(stateFlag ?? DEFAULT_STATE_DIR);

    const loaded = await loadMeshConfigFile(file);
    if (!loaded.ok) throw new ConfigError(loaded.errors);
    const appsDir = join(dirname(file), 'apps');
    const plan = planMesh(loaded.config, {
      file,
      basePort: Number(baseText),
      ingressTo: optional(values, 'ingress-to'),
      appFor: (s) => {
        const app = join(appsDir, `${s.name}.ts`);
        return existsSync(app) ? app : null;
      },
    });
    const notes = plan.skipped.map((s) => `Service ${s.service} has no app (${join(appsDir, `${s.service.split('.')[0]}.ts`)}), so nothing runs for it`);
    // The file wins over what was applied live last time (weft apply, weft canary): say so, rather than lose it quietly.
    const lastApplied = join(stateDir, 'config.yaml');
    if (existsSync(lastApplied) && readFileSync(lastApplied, 'utf8') !== loaded.config.source) {
      notes.push(`the config applied last time (weft apply or weft canary; kept in ${shown(lastApplied)}) differs from ${file}: weft up starts from ${file}, so apply those changes again or put them in the file`);
    }

    checkStateFree(stateDir);
    const { ports, moved } = await reservePorts(plan.ports);

    const progress = (line: string) => process.stderr.write(`weft up: ${line}\n`);
    let settled = false;
    let resolveOutcome!: (o: Outcome) => void;
    const outcome = new Promise<Outcome>((r) => (resolveOutcome = r));
    const settle = (o: Outcome) => {
      settled = true;
      resolveOutcome(o);
    };
    const onSignal = (signal: NodeJS.Signals) => settle({ kind: 'signal', signal });
    for (const s of SIGNALS) process.on(s, onSignal);

    const mesh = new LoopbackMesh({
      plan,
      ports,
      configFile: file,
      stateDir,
      env: childEnv(),
      onUnexpectedExit: (child, exit) => settle({ kind: 'exit', child, exit }),
      progress,
      // A save of the config file is applied, or refused whole: say which here, not only in the control plane's log.
      controlPlaneSays: (line) => process.stderr.write(line.startsWith(' ') ? `${line}\n` : `weft up: ${line}\n`),
    });
    const record = join(stateDir, 'up.json');
    mesh.start().then(
      (running) => {
        if (settled) return;
        const summary: Summary = { mesh: running, configFile: file, stateDir, logsDir: mesh.logsDir, stateFlag, moved, notes, configWarnings: loaded.warnings.map(formatIssue) };
        writeFileSync(record, JSON.stringify(summaryJson(summary), null, 2) + '\n', { mode: 0o600 });
        out.result(summaryJson(summary), () => summaryText(summary));
      },
      (error: Error) => settle({ kind: 'error', error }),
    );

    const o = await outcome;
    // A second Ctrl-C while stopping kills everything at once.
    for (const s of SIGNALS) process.off(s, onSignal);
    const force = () => {
      for (const c of mesh.children) {
        try {
          process.kill(-c.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      rmSync(record, { force: true });
      progress(`killed the control plane, the sidecars and the apps at once (SIGKILL); the state (and its CA) stays in ${shown(stateDir)}`);
      process.exit(1);
    };
    for (const s of SIGNALS) process.once(s, force);
    try {
      if (o.kind === 'signal') {
        progress(`${o.signal}: stopping (Ctrl-C again to kill everything at once)`);
      } else if (o.kind === 'exit') {
        const tail = o.child.tail().split('\n').map((l) => `    ${l}`).join('\n');
        progress(`${o.child.name} exited unexpectedly (${describe(o.exit)}); the end of ${shown(o.child.logFile)}:\n${tail}\nweft up: stopping the rest`);
      } else {
        progress(`${o.error.message}${o.error instanceof WeftError ? ` [${o.error.code}]` : ''}\nweft up: logs are in ${shown(mesh.logsDir)}; stopping everything`);
      }
      await mesh.stop();
      progress(`stopped; the state (and its CA) stays in ${shown(stateDir)}`);
    } finally {
      rmSync(record, { force: true });
      for (const s of SIGNALS) process.off(s, force);
    }
    return o.kind === 'signal' ? 0 : 1;
  },
};
