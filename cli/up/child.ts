// One process `weft up` runs (the control plane or a sidecar with its app): started through bin/weft as an operator
// would start it, its output in a log file, stopped with SIGTERM and, past a deadline, SIGKILL to its whole process
// group.

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

/**
 * The CLI as users run it: bin/weft starts a sidecar under the pinned Node with the flags its memory depends on
 * (4 MB semi-spaces, gc exposed for the idle collection, two malloc arenas). Run as `node cli/weft.ts`, the
 * shop's catalog-v1 sidecar went from 67 to 219 MB of RSS under curl traffic and stayed there idle, tracing or not.
 */
export const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ChildSpec {
  /** "control-plane", "catalog-v1" */
  readonly name: string;
  /** arguments after `weft` */
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly logFile: string;
  /** keep stdout as a pipe (the control plane prints where it listens there); it is copied to the log too */
  readonly pipeStdout?: boolean;
}

export class Child {
  readonly name: string;
  readonly logFile: string;
  readonly process: ChildProcess;
  readonly exited: Promise<ChildExit>;
  #exit: ChildExit | null = null;

  constructor(spec: ChildSpec) {
    this.name = spec.name;
    this.logFile = spec.logFile;
    mkdirSync(dirname(spec.logFile), { recursive: true, mode: 0o700 });
    // Emptied per run, so the tail shown when a child dies is this run's; then opened for appending, so what
    // this process copies in from a piped stdout lands after the child's own lines instead of over them.
    writeFileSync(spec.logFile, '', { mode: 0o600 });
    const log = openSync(spec.logFile, 'a');
    try {
      // Its own process group: Ctrl-C reaches only `weft up`, which stops the children in order, and a SIGKILL to
      // the group also takes the app a sidecar started.
      this.process = spawn(WEFT_BIN, spec.args, {
        env: spec.env,
        detached: true,
        stdio: ['ignore', spec.pipeStdout ? 'pipe' : log, log],
      });
    } finally {
      closeSync(log);
    }
    this.process.stdout?.on('data', (d: Buffer) => appendFileSync(spec.logFile, d));
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
      // A spawn failure (no such executable) emits 'error' and never 'exit'.
      this.process.once('error', () => {
        this.#exit ??= { code: 127, signal: null };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  get stdout(): Readable | null {
    return this.process.stdout;
  }

  get running(): boolean {
    return this.#exit === null;
  }

  /** The last `lines` lines of its log. */
  tail(lines = 12): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** SIGTERM, then SIGKILL to the process group after `graceMs`; leftovers of the group are killed either way. */
  async stop(graceMs: number): Promise<ChildExit> {
    if (this.running) this.#signal(this.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
    const first = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    this.#signal(-this.pid, 'SIGKILL');
    return first === 'late' ? this.exited : first;
  }

  #signal(pid: number, signal: NodeJS.Signals): void {
    if (this.pid <= 0) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone (ESRCH)
    }
  }
}
