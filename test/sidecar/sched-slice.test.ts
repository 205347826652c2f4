// --sched-slice: the sidecar's event loop asks Linux for a short CPU time slice (sidecar/sched-slice.ts). What
// the kernel then holds for each thread is read back with sched_getattr (through perl, as the sidecar asks): the
// main thread has it, the app started with `-- app` does not inherit it, and `off` asks for nothing.

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MESH_YAML } from '../helpers/control-plane.ts';
import { weft } from '../helpers/cli.ts';
import { freePort, startMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

/** The slice (ns) sched_getattr reports for a thread (the kernel's default unless it asked for another). */
function sliceNs(tid: number): number {
  const script = 'my $a = "\\0" x 48; syscall(315, $ARGV[0] + 0, $a, 48, 0) == 0 or die "$!\\n"; print((unpack("LLQlLQQQ", $a))[5])';
  return Number(execFileSync('perl', ['-e', script, String(tid)], { encoding: 'utf8' }));
}

const SLICE_LINE = /"msg":"(event loop runs with a short CPU time slice|could not ask for a short CPU time slice[^"]*)"[^\n]*/;
const canAsk = process.platform === 'linux' && process.arch === 'x64';

let mesh: TestMesh;
test.before(async () => {
  mesh = await startMesh(MESH_YAML);
});
test.after.always(() => mesh?.stop());

test('by default the event loop asks for a 100 µs slice; the app it starts does not inherit it', async (t) => {
  const pidFile = join(mesh.dir, 'app.pid');
  const web = await mesh.sidecar({ service: 'web', appPort: await freePort(), command: ['sh', '-c', `echo $$ > ${pidFile}; exec sleep 60`] });
  const line = await waitFor('the slice outcome in the log', () => SLICE_LINE.exec(web.logs())?.[0]);
  if (!canAsk || !line.includes('short CPU time slice","sliceUs"')) {
    // A kernel before 6.12 or a machine without perl: said, and the sidecar serves all the same.
    t.regex(line, /"reason":"[^"]+"/);
    t.is((await web.admin('/ready')).status, 200);
    t.log(`not asked here: ${line}`);
    return;
  }
  t.regex(line, /"sliceUs":100\b/);
  const pid = web.child.pid!;
  t.is(sliceNs(pid), 100_000, 'the main thread holds the slice');
  const helpers = readdirTasks(pid).filter((tid) => tid !== pid);
  t.true(helpers.length > 0);
  t.deepEqual(helpers.map(sliceNs).filter((ns) => ns === 100_000), [], "node's other threads keep the default");
  const app = Number(await waitFor('the app pid', () => (existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() || undefined : undefined)));
  t.not(sliceNs(app), 100_000, 'the app runs with the kernel default');
});

test('--sched-slice off asks for nothing', async (t) => {
  const catalog = await mesh.sidecar({ service: 'catalog', appPort: await freePort(), env: { WEFT_SCHED_SLICE: 'off' } });
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.notRegex(catalog.logs(), SLICE_LINE);
  if (canAsk) t.not(sliceNs(catalog.child.pid!), 100_000);
});

test('a --sched-slice the kernel would not take is refused, naming the flag and the range', async (t) => {
  for (const bad of ['50us', '1s', '200ms', 'fast', '0']) {
    const r = await weft(['sidecar', '--control-plane', mesh.url, '--trust-bundle', mesh.bundleFile, '--token', 'x', '--service', 'web', '--app-port', '1', '--sched-slice', bad]);
    t.not(r.code, 0, bad);
    t.true(r.stderr.includes(`--sched-slice ${JSON.stringify(bad)} must be off or a time from 100us to 100ms`), r.stderr);
  }
});

function readdirTasks(pid: number): number[] {
  const { readdirSync } = process.getBuiltinModule('node:fs');
  return readdirSync(`/proc/${pid}/task`).map(Number);
}
