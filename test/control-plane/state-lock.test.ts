// One control plane per state dir (control-plane/state-lock.ts), through real `weft control-plane` processes: a
// second is refused while the first runs and serves; a lock left by a dead or recycled pid is taken over; and a
// start that fails leaves the state dir as it was.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { isWeftError } from '../../errors.ts';
import { processStartTicks, StateLock } from '../../control-plane/state-lock.ts';
import { tempDir } from '../helpers/ca.ts';
import { weft } from '../helpers/cli.ts';
import { MESH_YAML } from '../helpers/control-plane.ts';
import { run, waitFor, type Proc } from '../helpers/mesh.ts';
import { bootstrap } from '../helpers/stub-sidecar.ts';

const CP_ID = 'spiffe://shop.example/ns/weft-system/sa/control-plane';

interface Started {
  readonly proc: Proc;
  readonly url: string;
}

/** A mesh.yaml and a state dir (not made yet) in a fresh temp dir. */
function setup(): { config: string; state: string } {
  const dir = tempDir('weft-lock-');
  const config = join(dir, 'mesh.yaml');
  writeFileSync(config, MESH_YAML);
  return { config, state: join(dir, 'state') };
}

async function startCp(t: { teardown(fn: () => unknown): void }, config: string, state: string): Promise<Started> {
  const proc = run(['control-plane', '--config', config, '--state', state, '--listen', '127.0.0.1:0']);
  t.teardown(() => proc.kill('SIGKILL'));
  const url = await waitFor('the control plane to listen', () => /listening on (https:\/\/\S+)/.exec(proc.logs())?.[1] ?? (proc.child.exitCode !== null ? Promise.reject(new Error(proc.logs())) : undefined));
  return { proc, url };
}

function lockOf(state: string): { pid: number; startTicks: string | null; host: string; since: string } {
  return JSON.parse(readFileSync(join(state, 'control-plane.lock'), 'utf8')) as ReturnType<typeof lockOf>;
}

/** Every file under `dir` with a hash of its bytes and its mode: what "the state dir as it was" compares. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[p.slice(dir.length)] = `${(st.mode & 0o777).toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

test('a second control plane on a state dir in use is refused, naming it; the first serves on, and a token works once', async (t) => {
  const { config, state } = setup();
  const first = await startCp(t, config, state);
  const pid = first.proc.child.pid!;
  t.like(lockOf(state), { pid, startTicks: processStartTicks(pid), host: hostname() });

  const second = await weft(['control-plane', '--config', config, '--state', state, '--listen', '127.0.0.1:0']);
  t.is(second.code, 1);
  const since = lockOf(state).since;
  t.is(second.stderr.trim(), `weft: the state dir ${state} is in use by another control plane (pid ${pid}, since ${since}; lock ${state}/control-plane.lock): two on one state dir would each accept a bootstrap token once. Stop it first (kill ${pid}), or give this one its own --state DIR [WEFT_STATE_DIR_LOCKED]`);
  t.is(lockOf(state).pid, pid, 'the lock is still the first one\'s');

  // The first still serves: weft token beside it (its documented use) and a redemption, once.
  const token = await weft(['token', '--service', 'web', '--state', state]);
  t.is(token.code, 0, token.stderr);
  const conn = { url: first.url, ca: readFileSync(join(state, 'ca', 'bundle.pem'), 'utf8'), serverIdentity: CP_ID };
  await bootstrap(conn, token.stdout.trim());
  const replay = await t.throwsAsync(bootstrap(conn, token.stdout.trim()));
  t.true(isWeftError(replay, 'WEFT_TOKEN_REPLAYED'), replay?.message);
  t.is(readFileSync(join(state, 'used-tokens.jsonl'), 'utf8').trim().split('\n').length, 1);

  // A clean stop gives the state dir up.
  t.is(await first.proc.kill('SIGTERM'), 0);
  t.false(existsSync(join(state, 'control-plane.lock')));
});

test('a lock whose pid is gone, or was given to another process, is taken over with a log line', async (t) => {
  const { config, state } = setup();
  const gone = spawnSync('true').pid!;
  // The test worker is alive but is no control plane: its start time is not the one the lock recorded.
  for (const holder of [{ pid: gone, startTicks: '1' }, { pid: process.pid, startTicks: '1' }]) {
    mkdirSync(state, { recursive: true });
    writeFileSync(join(state, 'control-plane.lock'), JSON.stringify({ ...holder, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
    const cp = await startCp(t, config, state);
    t.is(lockOf(state).pid, cp.proc.child.pid!);
    t.regex(cp.proc.logs(), new RegExp(`"msg":"took over the state dir lock of a control plane that no longer runs","lock":"${state}/control-plane.lock","pid":${holder.pid}`));
    t.is(await cp.proc.kill('SIGTERM'), 0);
  }
});

test('a control plane killed with SIGKILL leaves its lock; the next start on the state dir takes it over', async (t) => {
  const { config, state } = setup();
  const first = await startCp(t, config, state);
  await first.proc.kill('SIGKILL');
  t.is(lockOf(state).pid, first.proc.child.pid!);
  const second = await startCp(t, config, state);
  t.is(lockOf(state).pid, second.proc.child.pid!);
  t.regex(second.proc.logs(), /took over the state dir lock/);
  t.is(await second.proc.kill('SIGTERM'), 0);
});

test('a start that cannot listen (port taken) leaves the state dir as it was: config.yaml, journal and all', async (t) => {
  const held = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  await once(held, 'listening');
  t.teardown(() => held.close());
  const port = (held.address() as net.AddressInfo).port;

  const { config, state } = setup();
  const before = await startCp(t, config, state);
  t.is(await before.proc.kill('SIGTERM'), 0);
  const was = snapshot(state);
  t.is(readFileSync(join(state, 'config.yaml'), 'utf8'), MESH_YAML);

  const other = join(state, '..', 'other.yaml');
  writeFileSync(other, `# another config\n${MESH_YAML}`);
  const r = await weft(['control-plane', '--config', other, '--state', state, '--listen', `127.0.0.1:${port}`]);
  t.is(r.code, 1);
  t.regex(r.stderr, /\[WEFT_LISTEN_FAILED\]/);
  t.deepEqual(snapshot(state), was);

  // On a first start, nothing is left at all: no CA pinned to a trust domain, no secrets, no directory.
  const fresh = join(state, '..', 'fresh');
  t.is((await weft(['control-plane', '--config', other, '--state', fresh, '--listen', `127.0.0.1:${port}`])).code, 1);
  t.false(existsSync(fresh));
});

test('in one process: a second start on the same state dir is refused too, and a stop lets the next one in', (t) => {
  const path = join(tempDir('weft-lock-'), 'control-plane.lock');
  const logs: unknown[] = [];
  const lock = StateLock.acquire(path, 'DIR', (e) => logs.push(e));
  const err = t.throws(() => StateLock.acquire(path, 'DIR', (e) => logs.push(e)));
  t.true(isWeftError(err, 'WEFT_STATE_DIR_LOCKED'), err?.message);
  t.regex(err!.message, new RegExp(`^the state dir DIR is in use by another control plane \\(pid ${process.pid}, since `));
  lock.release();
  StateLock.acquire(path, 'DIR', (e) => logs.push(e)).release();
  t.deepEqual(logs, []);
  writeFileSync(path, 'not json');
  const junk = t.throws(() => StateLock.acquire(path, 'DIR', () => {}));
  t.is(junk?.message, `${path} is not a lock weft wrote, so whether a control plane runs on DIR cannot be told; if none does, delete ${path} and start again`);
});

test('weft up on a state dir a control plane holds is refused before it starts anything, naming that control plane', async (t) => {
  const { config, state } = setup();
  const cp = await startCp(t, config, state);
  const r = await weft(['up', 'examples/shop/mesh.yaml', '--state', state]);
  t.is(r.code, 2);
  t.true(r.stderr.includes(`a control plane (pid ${cp.proc.child.pid}) is already running with the state dir ${state}; stop it first (kill ${cp.proc.child.pid})`), r.stderr);
  t.false(existsSync(join(state, 'logs')), 'no child was started');
  t.is(await cp.proc.kill('SIGTERM'), 0);
});

test('the CA commands take no lock: weft ca rotate beside a running control plane is picked up live', async (t) => {
  const { config, state } = setup();
  const cp = await startCp(t, config, state);
  const prep = await weft(['ca', 'rotate', 'prepare', '--dir', join(state, 'ca')]);
  t.is(prep.code, 0, prep.stderr);
  await waitFor('the control plane to reload its CA', () => /"msg":"CA state changed; reloaded","roots":2/.test(cp.proc.logs()) || undefined);
  const token = await weft(['token', '--service', 'web', '--state', state]);
  t.is(token.code, 0, token.stderr);
  t.notRegex(cp.proc.logs(), /renewing the control plane certificate failed/);
  t.is(await cp.proc.kill('SIGTERM'), 0);
});
