// Reading a sidecar's or the control plane's /metrics in tests.

import { execFile } from 'node:child_process';
import { samplesOf } from '../../cli/top/exposition.ts';
import type { SidecarProc } from './mesh.ts';

/** The value of one sample: `name` with exactly these labels (NaN when there is no such series). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  const found = samplesOf(text, 'test').find((s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v));
  return found ? found.value : NaN;
}

/** weft_requests_in_flight of a running sidecar, summed over its series. */
export async function inFlight(sidecar: SidecarProc): Promise<number> {
  return samplesOf((await sidecar.admin('/metrics')).body, 'test').filter((x) => x.name === 'weft_requests_in_flight').reduce((sum, x) => sum + x.value, 0);
}

/** `promtool check metrics` on the text (Debian's prometheus package): exit status and what it said. */
export function promtool(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      if (code === -1) reject(err);
      else resolve({ code, output: stdout + stderr });
    });
    child.stdin!.end(text);
  });
}
