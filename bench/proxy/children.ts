// The proxy benchmark's child processes: started with their output in log files, and stopped on every way out.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** stdout and stderr of the process (stderr only when stdout is piped). */
  readonly log: string;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** pipe stdout to the caller (e.g. to read an address it prints); stderr still goes to the log */
  readonly pipeStdout?: boolean;
}

export class Children {
  readonly #dir: string;
  readonly #live = new Set<Child>();

  constructor(logDir: string) {
    this.#dir = logDir;
    // Whatever ends this process, no haproxy, nginx or sidecar outlives it.
    process.on('exit', () => this.killNow());
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(signal, () => {
        this.killNow();
        process.exit(130);
      });
    }
  }

  start(name: string, command: string, args: readonly string[], opts: StartOptions = {}): Child {
    const log = join(this.#dir, `${name}.log`);
    const fd = openSync(log, 'a');
    const proc = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', opts.pipeStdout ? 'pipe' : fd, fd] });
    closeSync(fd);
    proc.on('error', () => {}); // a failed spawn shows as the missing pid below; a failed kill needs no report
    if (proc.pid === undefined) throw new Error(`${name}: could not start ${command}`);
    const child: Child = { name, proc, pid: proc.pid, log };
    this.#live.add(child);
    proc.once('exit', () => this.#live.delete(child));
    return child;
  }

  /** Tracks a process spawned elsewhere (a load generator whose output the caller reads), so it is stopped too. */
  adopt(name: string, proc: ChildProcess): void {
    if (proc.pid === undefined) return;
    const child: Child = { name, proc, pid: proc.pid, log: '(output read by the caller)' };
    this.#live.add(child);
    proc.once('exit', () => this.#live.delete(child));
  }

  /** SIGTERM, then SIGKILL if it has not gone after `graceMs`. */
  async stop(child: Child, graceMs = 3000): Promise<void> {
    if (!exited(child)) {
      const gone = new Promise<void>((resolve) => child.proc.once('exit', () => resolve()));
      child.proc.kill('SIGTERM');
      const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    }
    this.#live.delete(child);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#live].map((c) => this.stop(c)));
  }

  /** Synchronous last resort for the 'exit' handler and signals. */
  killNow(): void {
    for (const c of this.#live) if (!exited(c)) c.proc.kill('SIGKILL');
    this.#live.clear();
  }
}

export function exited(child: Child): boolean {
  return child.proc.exitCode !== null || child.proc.signalCode !== null;
}

export function logTail(child: Child, lines = 15): string {
  try {
    return readFileSync(child.log, 'utf8').trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
  } catch {
    return '    (no log)';
  }
}
