// What loading the sidecar costs in built-in modules: the ones a sidecar proxying plain HTTP/1.1 must not load.
// Each was once loaded by accident and cost memory in every sidecar (README, proxy benchmark): an ES import of
// node:http runs its lazy getters and loads node's bundled undici (13 MB); node:http2 is 4 MB, needed only for
// HTTP/2 and gRPC traffic; node:util's and node:fs's namespaces load worker_threads and readline; the global
// `performance` loads all of perf_hooks; node:child_process is for `-- app` only.

import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NOT_LOADED = ['http2', 'internal/deps/undici/undici', 'worker_threads', 'readline', 'perf_hooks', 'child_process', 'internal/fs/promises'];

test('importing the sidecar loads none of the built-ins it must not carry', async (t) => {
  const script = `await import(${JSON.stringify(`${ROOT}cli/commands/sidecar.ts`)});
    const loaded = new Set(process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)));
    console.log(JSON.stringify({ http: loaded.has('http'), tls: loaded.has('tls'), unwanted: ${JSON.stringify(NOT_LOADED)}.filter((m) => loaded.has(m)) }));`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))),
  );
  const r = JSON.parse(out) as { http: boolean; tls: boolean; unwanted: string[] };
  t.true(r.http && r.tls, 'the probe saw the modules the sidecar does need');
  t.deepEqual(r.unwanted, []);
});
