// bench/sidecar-rss: what telemetry costs a sidecar in memory. Two meshes in one run, the same but for the Mesh's
// `tracing` (off, then on, exporting to a local OTLP receiver); in each, web's sidecar calls catalog's. VmRSS of
// both sidecars is read from /proc when idle after start, then idle again after 500 requests (so the tracer has
// made and exported spans). Tracing off and on alternate, twice. Writes bench/results/sidecar-rss.json.

import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { httpEcho } from '../test/helpers/apps.ts';
import { startMesh, type SidecarProc } from '../test/helpers/mesh.ts';
import { startOtlpReceiver } from '../test/helpers/otlp-receiver.ts';

const REQUESTS = 500;
const SETTLE_MS = 3000;

const yaml = (tracing: string) => `apiVersion: weft/v1
kind: Mesh
metadata: {name: mesh}
spec:
  trustDomain: bench.example
  ${tracing}
---
apiVersion: weft/v1
kind: Service
metadata: {name: web}
spec: {port: 8080}
---
apiVersion: weft/v1
kind: Service
metadata: {name: catalog}
spec: {port: 8081}
`;

function rssMb(p: SidecarProc): number {
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'))![1]);
  return Math.round((kb / 1024) * 10) / 10;
}

function call(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers: { host: 'catalog' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      })
      .on('error', reject);
  });
}

const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

async function measure(tracing: 'off' | 'on') {
  const receiver = await startOtlpReceiver();
  const app = await httpEcho('catalog');
  const mesh = await startMesh(yaml(tracing === 'on' ? `tracing: {endpoint: "${receiver.url}", sampling: 1}` : ''));
  try {
    const catalog = await mesh.sidecar({ service: 'catalog', appPort: app.port });
    const web = await mesh.sidecar({ service: 'web', appPort: 1 });
    await settle();
    const idle = { web: rssMb(web), catalog: rssMb(catalog) };
    for (let i = 0; i < REQUESTS; i += 10) {
      const statuses = await Promise.all(Array.from({ length: 10 }, (_, j) => call(web.ports.outbound, `/items/${i + j}`)));
      if (statuses.some((s) => s !== 200)) throw new Error(`a request failed: ${statuses}`);
    }
    await settle();
    const afterLoad = { web: rssMb(web), catalog: rssMb(catalog) };
    return { tracing, idle, afterRequests: afterLoad, spansReceived: receiver.spans.length };
  } finally {
    await mesh.stop();
    await app.close();
    await receiver.close();
  }
}

// Alternate the two, twice: RSS drifts between runs on a busy machine, and alternating keeps the comparison fair.
const runs: Awaited<ReturnType<typeof measure>>[] = [];
for (const mode of ['off', 'on', 'off', 'on'] as const) runs.push(await measure(mode));
const mean = (xs: number[]) => Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10;
const idle = (mode: 'off' | 'on') => mean(runs.filter((r) => r.tracing === mode).flatMap((r) => [r.idle.web, r.idle.catalog]));
const afterRequests = (mode: 'off' | 'on') => mean(runs.filter((r) => r.tracing === mode).flatMap((r) => [r.afterRequests.web, r.afterRequests.catalog]));
const result = {
  what: `VmRSS (MB) of two sidecars, idle ${SETTLE_MS / 1000} s after start and again after ${REQUESTS} requests web → catalog; tracing off and on, alternated twice`,
  node: process.version,
  meanIdleMb: { off: idle('off'), on: idle('on') },
  meanAfterRequestsMb: { off: afterRequests('off'), on: afterRequests('on') },
  tracingCostIdleMb: Math.round((idle('on') - idle('off')) * 10) / 10,
  runs,
};
mkdirSync(new URL('results/', import.meta.url), { recursive: true });
writeFileSync(new URL('results/sidecar-rss.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result, null, 2));
