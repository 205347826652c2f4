// The control plane's exclusive hold on its state directory, as etcd and Consul hold their data dir: with two
// control planes on one, each would accept a bootstrap token once and both would write its journals and config.

import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { WeftError } from '../errors.ts';

/** What DIR/control-plane.lock holds: who has the state dir, and enough to tell a recycled pid from it. */
export interface LockHolder {
  readonly pid: number;
  /** the process's start time in clock ticks since boot (/proc/PID/stat field 22); null where there is no /proc */
  readonly startTicks: string | null;
  readonly host: string;
  /** when it took the lock, ISO 8601 */
  readonly since: string;
}

/** The start time of `pid` (/proc/PID/stat field 22), or null when it cannot be read (no such process, no /proc). */
export function processStartTicks(pid: number): string | null {
  return procStat(pid)?.[19] ?? null;
}

/** Fields 3 on of /proc/PID/stat (state, ppid, ...), or null when it cannot be read. */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself hold spaces or ')': count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * Whether the lock's holder still runs: its pid is alive and, where /proc tells, started when the lock says (a
 * pid the kernel has given to another process since is not the holder). A lock from another host cannot be
 * checked from here, so it counts as held.
 */
export function holderRuns(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: alive, under another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(holder.pid);
  // A zombie (Z) or dying (X) process has let go of everything: a kill -9'd holder its parent has not reaped yet.
  if (stat && (stat[0] === 'Z' || stat[0] === 'X')) return false;
  return holder.startTicks === null || !stat || stat[19] === holder.startTicks;
}

function parseHolder(text: string): LockHolder | null {
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (!Number.isSafeInteger(h.pid) || h.pid! <= 0 || typeof h.host !== 'string') return null;
    return { pid: h.pid!, startTicks: typeof h.startTicks === 'string' ? h.startTicks : null, host: h.host, since: String(h.since) };
  } catch {
    return null;
  }
}

/** The holder named in `path` if it still runs; null when there is no lock or its holder is gone. */
export function liveHolder(path: string): LockHolder | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const holder = parseHolder(text);
  return holder && holderRuns(holder) ? holder : null;
}

export class StateLock {
  readonly path: string;
  readonly #text: string;

  private constructor(path: string, text: string) {
    this.path = path;
    this.#text = text;
  }

  /**
   * Takes the lock at `path` for this process, taking over one whose holder no longer runs (and saying so
   * through `log`). Refuses with WEFT_STATE_DIR_LOCKED while its holder runs; `stateDir` names the directory.
   */
  static acquire(path: string, stateDir: string, log: (event: Record<string, unknown>) => void): StateLock {
    const me: LockHolder = { pid: process.pid, startTicks: processStartTicks(process.pid), host: hostname(), since: new Date().toISOString() };
    const text = JSON.stringify(me) + '\n';
    for (let attempt = 0; attempt < 5; attempt++) {
      if (create(path, text)) return new StateLock(path, text);
      let found: string;
      try {
        found = readFileSync(path, 'utf8');
      } catch {
        continue; // released between our try and our look: try again
      }
      const holder = parseHolder(found);
      if (!holder) {
        throw new WeftError('WEFT_STATE_DIR_LOCKED', `${path} is not a lock weft wrote, so whether a control plane runs on ${stateDir} cannot be told; if none does, delete ${path} and start again`, { path, stateDir });
      }
      if (holderRuns(holder)) {
        const here = holder.host === hostname();
        const what = here ? `Stop it first (kill ${holder.pid})` : `It cannot be checked from this host; if it no longer runs, delete ${path}`;
        throw new WeftError(
          'WEFT_STATE_DIR_LOCKED',
          `the state dir ${stateDir} is in use by another control plane (pid ${holder.pid}${here ? '' : ` on host ${holder.host}`}, since ${holder.since}; lock ${path}): two on one state dir would each accept a bootstrap token once. ${what}, or give this one its own --state DIR`,
          { path, stateDir, pid: holder.pid, host: holder.host, since: holder.since },
        );
      }
      if (takeOver(path, found)) log({ msg: 'took over the state dir lock of a control plane that no longer runs', lock: path, pid: holder.pid, since: holder.since });
    }
    throw new WeftError('WEFT_STATE_DIR_LOCKED', `could not take ${path}: other processes keep taking and releasing it; is something starting control planes on ${stateDir} in a loop?`, { path, stateDir });
  }

  /** Gives the state dir up, if the lock is still this one's (an operator may have deleted it meanwhile). */
  release(): void {
    try {
      if (readFileSync(this.path, 'utf8') === this.#text) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/**
 * Creates `path` holding `text`, or returns false if it exists. The text is written and synced under a temp name
 * and then linked into place (link fails if the name exists, like O_EXCL), so the lock is never seen empty.
 */
function create(path: string, text: string): boolean {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  finally {
    unlinkSync(tmp);
  }
}

/**
 * Removes the stale lock whose text is `stale`, unless another starter replaced it since it was read: the lock is
 * renamed aside (only one renamer gets it) and, if it is not the stale one after all, put back.
 */
function takeOver(path: string, stale: string): boolean {
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    renameSync(path, aside);
  } catch {
    return false; // another starter took it aside first
  }
  const moved = readFileSync(aside, 'utf8');
  if (moved !== stale) {
    try {
      linkSync(aside, path);
    } catch {
      // a third starter has created one meanwhile; it holds the lock
    }
  }
  unlinkSync(aside);
  return moved === stale;
}
