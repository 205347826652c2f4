// The pure parts of tracing, without processes: trace context in and out (W3C, B3 single and multi), span
// attributes and error status, and the export queue's accounting of every span it loses.

import test from 'ava';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { loadOtel } from '../../../sidecar/telemetry/otel.ts';
import { AccountedBatchProcessor } from '../../../sidecar/telemetry/span-queue.ts';
import { b3Format, TraceContextCodec } from '../../../sidecar/telemetry/trace-context.ts';
import { endAttributes, isSpanError, startAttributes } from '../../../sidecar/telemetry/tracing.ts';

const otel = await loadOtel();
const codec = new TraceContextCodec(otel);
const { trace } = otel.api;

const T = '0af7651916cd43dd8448eb211c80319c';
const S = 'b7ad6b7169203331';
const T2 = '463ac35c9f6413ad48485a3953bb6124';
const S2 = 'a2fb4a1d1a96d312';

const headers = (h: Record<string, string>) => (name: string) => h[name];

for (const [title, h, want] of [
  ['W3C', { traceparent: `00-${T}-${S}-01` }, { traceId: T, spanId: S, sampled: true, b3: null }],
  ['W3C, not sampled', { traceparent: `00-${T}-${S}-00` }, { traceId: T, spanId: S, sampled: false, b3: null }],
  ['B3 single', { b3: `${T2}-${S2}-1` }, { traceId: T2, spanId: S2, sampled: true, b3: 'single' }],
  ['B3 multi', { 'x-b3-traceid': T2, 'x-b3-spanid': S2, 'x-b3-sampled': '1' }, { traceId: T2, spanId: S2, sampled: true, b3: 'multi' }],
  ['W3C wins over B3', { traceparent: `00-${T}-${S}-01`, b3: `${T2}-${S2}-1` }, { traceId: T, spanId: S, sampled: true, b3: 'single' }],
  ['a bad traceparent falls back to B3', { traceparent: 'garbage', b3: `${T2}-${S2}-0` }, { traceId: T2, spanId: S2, sampled: false, b3: 'single' }],
  ['nothing: a new trace', {}, null],
  ['a bad traceparent alone: a new trace', { traceparent: `00-${'0'.repeat(32)}-${S}-01` }, null],
] as const) {
  test(`extract: ${title}`, (t) => {
    const { parent, b3 } = codec.extract(headers(h));
    const sc = trace.getSpanContext(parent);
    if (want === null) {
      t.is(sc, undefined);
      return;
    }
    t.is(b3, want.b3);
    t.like(sc, { traceId: want.traceId, spanId: want.spanId, isRemote: true });
    t.is((sc!.traceFlags & 1) === 1, want.sampled);
  });
}

test('inject: W3C always; B3 only in the caller\'s own encoding; multi carries the parent span', (t) => {
  const ctx = trace.setSpanContext(otel.api.ROOT_CONTEXT, { traceId: T, spanId: S, traceFlags: 1 });
  t.deepEqual(codec.inject(ctx, null, undefined), { traceparent: `00-${T}-${S}-01` });
  t.deepEqual(codec.inject(ctx, 'single', S2), { traceparent: `00-${T}-${S}-01`, b3: `${T}-${S}-1` });
  t.deepEqual(codec.inject(ctx, 'multi', S2), { traceparent: `00-${T}-${S}-01`, 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '1', 'x-b3-parentspanid': S2 });
});

test('b3Format tells the encodings apart', (t) => {
  t.is(b3Format(headers({ b3: '0' })), 'single');
  t.is(b3Format(headers({ 'x-b3-traceid': T })), 'multi');
  t.is(b3Format(headers({ traceparent: 'x' })), null);
});

test('span attributes: start, facts and outcome; error status per direction', (t) => {
  const start = { direction: 'outbound', protocol: 'grpc', method: 'POST', path: '/prices.Prices/Get', header: () => undefined, source: 'spiffe://d/ns/a/sa/web', service: 'prices.default' } as const;
  t.deepEqual(startAttributes(start, null), {
    'http.request.method': 'POST', 'url.path': '/prices.Prices/Get', 'network.protocol.name': 'http', 'network.protocol.version': '2', 'rpc.system': 'grpc',
    'weft.direction': 'outbound', 'weft.destination.service': 'prices.default', 'weft.source.identity': 'spiffe://d/ns/a/sa/web',
  });
  t.deepEqual(endAttributes({ destination: 'spiffe://d/ns/a/sa/prices', subset: 'v2', endpoint: '[::1]:15006', route: 'canary', retries: 2, breaker: 'half-open' }, { status: 503, reason: 'circuit-open' }), {
    'http.response.status_code': 503, 'weft.destination.identity': 'spiffe://d/ns/a/sa/prices', 'weft.destination.subset': 'v2', 'weft.destination.endpoint': '[::1]:15006',
    'server.address': '::1', 'server.port': 15006, 'weft.route': 'canary', 'weft.retries': 2, 'weft.breaker.state': 'half-open', 'weft.reason': 'circuit-open',
  });
  t.deepEqual(endAttributes({ policy: { allowed: false, policy: null, rule: null } }, { status: 403 }), { 'http.response.status_code': 403, 'weft.policy.decision': 'deny', 'weft.policy.name': 'mesh-default' });
  for (const [direction, status, error] of [['inbound', 200, false], ['inbound', 404, false], ['inbound', 503, true], ['inbound', 0, true], ['outbound', 404, true], ['outbound', 302, false]] as const) {
    t.is(isSpanError(direction, status), error, `${direction} ${status}`);
  }
});

/** An exporter the test answers by hand: each export waits until `answer` is called. */
function manualExporter() {
  const pending: { spans: ReadableSpan[]; done: (r: ExportResult) => void }[] = [];
  const exporter: SpanExporter = { export: (spans, done) => void pending.push({ spans, done }), shutdown: async () => {} };
  return {
    exporter,
    pending,
    answer(ok: boolean) {
      for (const p of pending.splice(0)) p.done({ code: ok ? otel.core.ExportResultCode.SUCCESS : otel.core.ExportResultCode.FAILED, error: ok ? undefined : new Error('collector said no') });
    },
  };
}

test('the export queue is bounded: with the collector stuck, spans past the bound are dropped and counted; every span is accounted for', async (t) => {
  const counts = { exported: 0, queue_full: 0, export_failed: 0, health: [] as (string | null)[] };
  const manual = manualExporter();
  const processor = new AccountedBatchProcessor(otel, manual.exporter, { maxQueueSize: 4, maxExportBatchSize: 2, scheduledDelayMillis: 60_000, exportTimeoutMillis: 60_000 }, {
    exported: (n) => (counts.exported += n),
    dropped: (reason, n) => (counts[reason] += n),
    health: (e) => counts.health.push(e?.message ?? null),
  });
  const provider = new otel.sdk.TracerProvider({ spanProcessors: [processor] });
  const tracer = provider.getTracer('test');
  const burst = (n: number) => {
    for (let i = 0; i < n; i++) tracer.startSpan(`s${i}`).end();
  };
  // A full batch goes to the (stuck) exporter at once; then the queue fills to its bound and the rest are dropped.
  burst(10);
  t.is(manual.pending.length, 1);
  t.is(manual.pending[0]!.spans.length, 2);
  t.is(counts.queue_full, 4);
  // The stuck export fails: its batch is lost and counted, and the failure is reported once.
  manual.answer(false);
  await new Promise((r) => setImmediate(r));
  t.is(counts.export_failed, 2);
  t.deepEqual(counts.health, ['collector said no']);
  // The collector recovers: everything still queued is exported.
  const flushed = processor.forceFlush();
  for (let i = 0; i < 10 && manual.pending.length; i++) {
    manual.answer(true);
    await new Promise((r) => setImmediate(r));
  }
  await flushed;
  t.is(counts.exported, 4);
  t.deepEqual(counts.health, ['collector said no', null]);
  t.is(counts.exported + counts.queue_full + counts.export_failed, 10);
  // Spans of a trace that is not sampled are neither queued nor counted as lost.
  const unsampled = new otel.sdk.TracerProvider({ spanProcessors: [processor], sampler: new otel.sdk.AlwaysOffSampler() }).getTracer('off');
  for (let i = 0; i < 10; i++) unsampled.startSpan('off').end();
  t.is(counts.queue_full, 4);
  await provider.shutdown();
});
