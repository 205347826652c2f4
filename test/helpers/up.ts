// Running `weft up` on the example shop as a real process, on a free range of ports.

import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { tempDir } from './ca.ts';
import { REPO, WEFT } from './cli.ts';
import { waitFor } from './mesh.ts';

export const EXAMPLE = 'examples/shop/mesh.yaml';

/**
 * A copy of the example shop in a temp dir, for a test that edits its config file: the apps beside it, and
 * node_modules linked so that they find their packages. Returns the copy's mesh.yaml.
 */
export function exampleCopy(): string {
  const dir = tempDir('weft-shop-');
  cpSync(join(REPO, 'examples/shop'), join(dir, 'shop'), { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'shop', 'mesh.yaml');
}

export interface Up {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

export function startUp(args: string[], file = EXAMPLE): Up {
  const child = spawn(WEFT, ['up', file, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export async function portsFree(ports: number[]): Promise<boolean> {
  const held: net.Server[] = [];
  try {
    for (const p of ports) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(p, '127.0.0.1', () => resolve());
      });
      held.push(s);
    }
    return true;
  } catch {
    return false;
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}

/**
 * A base port whose planned range is free, below the ephemeral range other tests' port-0 listeners use. Each
 * test file that runs `weft up` passes its own `slot`, so that two files running at once draw from disjoint
 * ranges: a range found free here is only bound when weft up starts, and another file's weft up could take it
 * in between.
 */
export async function freeBase(slot: 0 | 1): Promise<number> {
  const [lo, span] = [16_000 + slot * 7_500, 7_500 - 150];
  for (let i = 0; i < 50; i++) {
    const base = lo + 10 * Math.floor((Math.random() * span) / 10);
    const range = [base + 10, base + 80, ...Array.from({ length: 50 }, (_, k) => base + 100 + k)];
    if (await portsFree(range)) return base;
  }
  throw new Error('no free port range for weft up');
}

/**
 * Waits for weft up's summary and returns its stdout. If it exits first, or the summary never comes, the error
 * says so with the end of what it printed (a bare timeout told nothing of why).
 */
export async function readySummary(up: Up, timeoutMs: number): Promise<string> {
  const tail = () => `\n--- its stdout, the end ---\n${up.stdout().slice(-3000)}\n--- its stderr, the end ---\n${up.stderr().slice(-3000)}`;
  let outcome: { summary: string } | { exited: number | null };
  try {
    outcome = await waitFor('weft up to print its summary', () => {
      if (up.child.exitCode !== null || up.child.signalCode !== null) return { exited: up.child.exitCode };
      return up.stdout().includes('Ctrl-C stops everything') ? { summary: up.stdout() } : undefined;
    }, timeoutMs, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}${tail()}`);
  }
  if ('exited' in outcome) throw new Error(`weft up exited (${outcome.exited}) before it was ready${tail()}`);
  return outcome.summary;
}
