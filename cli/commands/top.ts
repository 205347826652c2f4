// weft top: live requests per second, success rate and p99 latency per service and subset, read from the
// sidecars' /metrics (each sidecar's admin address comes from the control plane's status).

import { WeftError } from '../../errors.ts';
import type { StatusReport } from '../../control-plane/api/operator.ts';
import type { ControlPlaneClient } from '../../control-plane/client.ts';
import { optional, parse, parseDuration } from '../args.ts';
import type { Command } from '../command.ts';
import { CONNECT_FLAGS, CONNECT_HELP, operatorClient } from '../operator-client.ts';
import { adminGet } from '../sidecar-admin.ts';
import { topRows, totalsOf, type TopRow, type Totals } from '../top/rates.ts';

interface Scrape {
  readonly at: number;
  /** by sidecar ID */
  readonly totals: Map<string, Totals>;
  readonly unreachable: { id: string; service: string; admin: string | null; error: string }[];
}

export interface TopReport {
  /** seconds between the two scrapes the rates come from */
  readonly windowSeconds: number;
  readonly sidecars: number;
  readonly unreachable: Scrape['unreachable'];
  readonly rows: readonly TopRow[];
}

async function scrape(client: ControlPlaneClient): Promise<Scrape> {
  const status = await client.request<StatusReport>('GET', '/v1/status');
  const totals = new Map<string, Totals>();
  const unreachable: Scrape['unreachable'] = [];
  await Promise.all(
    status.sidecars.map(async (s) => {
      const id = String(s.id);
      const admin = typeof s.admin === 'string' ? s.admin : null;
      if (!admin) {
        unreachable.push({ id, service: String(s.service), admin, error: 'registered no admin address' });
        return;
      }
      try {
        const r = await adminGet(admin, '/metrics');
        if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
        totals.set(id, totalsOf(r.body, `${admin}/metrics`));
      } catch (err) {
        unreachable.push({ id, service: String(s.service), admin, error: (err as Error).message });
      }
    }),
  );
  return { at: performance.now(), totals, unreachable };
}

function report(before: Scrape, after: Scrape): TopReport {
  const windowSeconds = (after.at - before.at) / 1000;
  return { windowSeconds: Math.round(windowSeconds * 1000) / 1000, sidecars: after.totals.size, unreachable: after.unreachable, rows: topRows(before.totals, after.totals, windowSeconds) };
}

export function topTable(r: TopReport): string {
  const rows = r.rows.map((x) => [
    x.service,
    x.subset || '-',
    x.requestsPerSecond.toFixed(1),
    x.successRate === null ? '-' : `${(x.successRate * 100).toFixed(1)}%`,
    x.p99Ms === null ? '-' : x.p99Ms < 10 ? `${x.p99Ms.toFixed(1)} ms` : `${Math.round(x.p99Ms)} ms`,
    String(x.requests),
  ]);
  const head = ['SERVICE', 'SUBSET', 'RPS', 'SUCCESS', 'P99', 'REQUESTS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  // Text left, numbers right.
  const line = (row: string[]) => row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  const out = [`${r.sidecars} sidecar(s), callers' view over the last ${r.windowSeconds.toFixed(1)} s`, '', line(head), ...rows.map(line)];
  if (rows.length === 0) out.push('(no requests between services yet)');
  for (const u of r.unreachable) out.push(`note: sidecar ${u.id} (${u.service}) not read: ${u.error}`);
  return out.join('\n');
}

export const top: Command = {
  name: 'top',
  help: `Usage: weft top [--interval 2s] [--once] [--json] [connection flags]

Live requests per second, success rate (share of answers below 500) and p99 latency for every service and
subset, from the sidecars' /metrics. The sidecars are found through the control plane (each registers its admin
address) and counted where calls are made, so what the mesh answered itself (an open breaker, no endpoint) counts
against the service as its callers saw it. Admin ports listen on loopback: run this on the sidecars' host.

  --interval D   time between samples (default 2s); rates are over the last interval
  --once         take one sample (two scrapes an interval apart), print it and exit
  --json         one JSON document per sample

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values } = parse('top', argv, { interval: { type: 'string' }, once: { type: 'boolean' }, ...CONNECT_FLAGS });
    const interval = parseDuration('interval', optional(values, 'interval') ?? '2s') * 1000;
    if (interval < 1000 || interval > 3_600_000) throw new WeftError('WEFT_CLI_USAGE', `--interval must be between 1s and 1h`);
    const client = operatorClient(values);
    const live = !values.once && !out.json && process.stdout.isTTY;
    let stop = false;
    const quit = () => (stop = true);
    process.once('SIGINT', quit);
    try {
      let before = await scrape(client);
      for (;;) {
        await sleep(interval, () => stop);
        if (stop) return 0;
        const after = await scrape(client);
        const r = report(before, after);
        before = after;
        if (values.once) {
          out.result(r, () => `weft top: ${topTable(r)}`);
          return 0;
        }
        // A terminal is redrawn in place; a pipe gets one block (or one JSON line) per sample.
        if (out.json) process.stdout.write(JSON.stringify(r) + '\n');
        else process.stdout.write(`${live ? '\x1b[H\x1b[2J' : ''}weft top${live ? ' (Ctrl-C to quit)' : ''}: ${topTable(r)}\n${live ? '' : '\n'}`);
      }
    } finally {
      process.off('SIGINT', quit);
      client.close();
    }
  },
};

/** Waits `ms`, waking early once `stopped()` says so (Ctrl-C). */
async function sleep(ms: number, stopped: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!stopped() && Date.now() < end) await new Promise((r) => setTimeout(r, Math.min(100, end - Date.now())));
}
