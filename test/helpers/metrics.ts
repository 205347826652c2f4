// Reading a sidecar's /metrics in tests.

import { samplesOf } from '../../cli/top/exposition.ts';

/** The value of one sample: `name` with exactly these labels (NaN when there is no such series). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  const found = samplesOf(text, 'test').find((s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v));
  return found ? found.value : NaN;
}
