// weft traces: a local OTLP/HTTP receiver that prints each trace as a tree, so a newcomer can see one request
// cross the mesh (app → sidecar → sidecar → app) without running a tracing backend.

import { WeftError } from '../../errors.ts';
import { optional, parse } from '../args.ts';
import type { Command } from '../command.ts';
import { listenError } from '../listen-error.ts';
import { SpanKind, startOtlpReceiver, type ReceivedSpan } from '../traces/otlp-receiver.ts';

/** A trace is printed once no span of it has arrived for this long. */
const QUIET_MS = 1000;
const KIND: Record<number, string> = { [SpanKind.SERVER]: 'server', [SpanKind.CLIENT]: 'client', [SpanKind.INTERNAL]: 'internal' };

export function traceTree(spans: readonly ReceivedSpan[]): string {
  const byParent = new Map<string, ReceivedSpan[]>();
  const ids = new Set(spans.map((s) => s.spanId));
  for (const s of spans) {
    const parent = ids.has(s.parentSpanId) ? s.parentSpanId : '';
    byParent.set(parent, [...(byParent.get(parent) ?? []), s]);
  }
  const lines = [`trace ${spans[0]!.traceId}`];
  const walk = (parent: string, depth: number) => {
    for (const s of (byParent.get(parent) ?? []).sort((a, b) => (a.startNs < b.startNs ? -1 : 1))) {
      const ms = Number(s.endNs - s.startNs) / 1e6;
      const a = s.attributes;
      const facts = [
        a['http.response.status_code'] !== undefined && `status ${a['http.response.status_code']}`,
        a['weft.source.identity'] !== undefined && `from ${a['weft.source.identity']}`,
        a['weft.destination.identity'] !== undefined && `to ${a['weft.destination.identity']}`,
        a['weft.destination.subset'] && `subset ${a['weft.destination.subset']}`,
        a['weft.policy.decision'] && `policy ${a['weft.policy.decision']}`,
      ].filter(Boolean);
      lines.push(`${'  '.repeat(depth + 1)}${s.resource['service.name'] ?? '?'} ${KIND[s.kind] ?? s.kind} ${s.name} ${ms.toFixed(1)} ms${facts.length ? ` (${facts.join(', ')})` : ''}`);
      walk(s.spanId, depth + 1);
    }
  };
  walk('', 0);
  return lines.join('\n');
}

export const traces: Command = {
  name: 'traces',
  help: `Usage: weft traces [--listen 127.0.0.1:4318] [--json]

Receives OTLP/HTTP traces (what the Mesh's tracing.endpoint points at; the example shop sends to
http://127.0.0.1:4318/v1/traces) and prints each trace as a tree of spans once it is complete: which sidecar,
server or client side, duration, status, the peer's SPIFFE ID, the subset and the policy decision. --json
prints one JSON object per trace, one per line, instead. Runs until interrupted.`,
  async run(argv, out) {
    const { values } = parse('traces', argv, { listen: { type: 'string' } });
    const listen = optional(values, 'listen') ?? '127.0.0.1:4318';
    const m = /^(.*):(\d+)$/.exec(listen);
    if (!m) throw new WeftError('WEFT_CLI_USAGE', `--listen ${JSON.stringify(listen)} must be HOST:PORT`);
    const pending = new Map<string, { spans: ReceivedSpan[]; timer: NodeJS.Timeout }>();
    const flush = (traceId: string) => {
      const t = pending.get(traceId)!;
      pending.delete(traceId);
      // One compact JSON object per line with --json, so the stream can be read line by line.
      if (out.json) process.stdout.write(JSON.stringify({ traceId, spans: t.spans.map((s) => ({ ...s, startNs: String(s.startNs), endNs: String(s.endNs) })) }) + '\n');
      else process.stdout.write(traceTree(t.spans) + '\n\n');
    };
    const receiver = await startOtlpReceiver({
      host: m[1],
      port: Number(m[2]),
      onSpans: (spans) => {
        for (const s of spans) {
          const t = pending.get(s.traceId) ?? { spans: [], timer: setTimeout(() => {}, 0) };
          clearTimeout(t.timer);
          t.spans.push(s);
          t.timer = setTimeout(() => flush(s.traceId), QUIET_MS);
          pending.set(s.traceId, t);
        }
      },
    }).catch((err: unknown) => {
      throw listenError(err, { '--listen': Number(m[2]) }, "is another 'weft traces' or a collector listening there? Stop it, or pass --listen HOST:PORT and point the Mesh's tracing.endpoint at it") ?? err;
    });
    process.stderr.write(`weft traces: receiving OTLP/HTTP on ${receiver.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await receiver.close();
    return 0;
  },
};
