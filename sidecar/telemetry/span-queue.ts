// The span export queue: the SDK's BatchSpanProcessor (batched, bounded, exported on a timer, never on the
// request path), with every span it would lose counted. A slow or absent collector fills the queue, and from then
// on spans are dropped at the door (reason queue_full) instead of piling up in memory; an export the collector
// refuses or never answers loses its batch (reason export_failed).
//
// What waits for a collector is bounded: the queue, plus one export in flight. A second export is never started
// beside it (it fails at once, its spans never sent), and one that outlives `abortAfterMillis` (the exporter's
// own retries and timeouts included) has its connection destroyed, so a batch is counted once, when the exporter
// reports its outcome, and nothing counted as dropped is sent afterwards. An export whose request reached the
// collector and got no answer is counted as unconfirmed, not dropped: the collector may have kept it.

import type { Context } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { ExportConnection } from './export-agent.ts';
import type { Otel } from './otel.ts';

export interface SpanAccount {
  exported(n: number): void;
  dropped(reason: 'queue_full' | 'export_failed', n: number): void;
  /** spans of an export the collector received and did not answer (it may have kept them); else dropped */
  unconfirmed?(n: number): void;
  /** an export failed (`error`) or, after failures, succeeded again (null) */
  health(error: Error | null): void;
}

export interface QueueLimits {
  /** spans held at most, waiting for export */
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  /** how long a finished span may wait before its batch is sent */
  readonly scheduledDelayMillis: number;
  readonly exportTimeoutMillis: number;
  /** an export still running after this long has its connection destroyed (`abort`); below exportTimeoutMillis */
  readonly abortAfterMillis?: number;
}

export class AccountedBatchProcessor implements SpanProcessor {
  readonly #batch: SpanProcessor;
  readonly #account: SpanAccount;
  readonly #limits: QueueLimits;
  readonly #sampled: number;
  /** spans handed to the batch processor and not yet taken by an export: its queue length */
  #queued = 0;
  #failing = false;
  #closed = false;

  /** an export handed to the exporter that has not reported back yet (or the next one, about to start) */
  #inFlight = false;
  /** exports waiting for the one in flight: only a flush (forceFlush, shutdown) starts several at once */
  readonly #waiting: (() => void)[] = [];

  /** `connection`: the exporter's (export-agent.ts), to cut a late export and learn whether one went unanswered. */
  constructor(otel: Otel, exporter: SpanExporter, limits: QueueLimits, account: SpanAccount, connection?: ExportConnection) {
    this.#account = account;
    this.#limits = limits;
    this.#sampled = otel.api.TraceFlags.SAMPLED;
    const { SUCCESS, FAILED } = otel.core.ExportResultCode;
    // A flush takes the whole queue at once, in batches: that many may wait; one more is not sent at all.
    const maxWaiting = Math.ceil(limits.maxQueueSize / limits.maxExportBatchSize);
    const send = (spans: ReadableSpan[], done: (r: ExportResult) => void) => {
      this.#inFlight = true;
      connection?.begin();
      const deadline = connection && limits.abortAfterMillis !== undefined ? setTimeout(() => connection.cut(), limits.abortAfterMillis).unref() : undefined;
      exporter.export(spans, (result) => {
        clearTimeout(deadline);
        if (result.code === SUCCESS) {
          account.exported(spans.length);
          if (this.#failing) account.health(null);
          this.#failing = false;
        } else {
          if (connection?.unanswered() && account.unconfirmed) account.unconfirmed(spans.length);
          else account.dropped('export_failed', spans.length);
          if (!this.#failing) account.health(result.error ?? new Error('export failed'));
          this.#failing = true;
        }
        // The next waiting export starts once the exporter has let go of this one (it does so a tick later).
        const next = this.#waiting.shift();
        if (next) setImmediate(next);
        else this.#inFlight = false;
        done(result);
      });
    };
    const counting: SpanExporter = {
      export: (spans: ReadableSpan[], done: (r: ExportResult) => void) => {
        // The batch processor takes a batch off its queue just before it calls export.
        this.#queued -= spans.length;
        if (!this.#inFlight) return send(spans, done);
        if (this.#waiting.length < maxWaiting) return void this.#waiting.push(() => send(spans, done));
        // Only when the batch processor gave up waiting for an export, again and again: this batch is never sent.
        account.dropped('export_failed', spans.length);
        done({ code: FAILED, error: new Error('exports are still in flight') });
      },
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
    this.#batch = new otel.sdk.BatchSpanProcessor({ exporter: counting, ...limits });
  }

  onStart(span: Span, parent: Context): void {
    this.#batch.onStart(span, parent);
  }

  onEnd(span: ReadableSpan): void {
    // Unsampled spans are never queued (the batch processor ignores them too).
    if (this.#closed || (span.spanContext().traceFlags & this.#sampled) === 0) return;
    // The same bound the batch processor applies, checked here so that what it would drop silently is counted.
    if (this.#queued >= this.#limits.maxQueueSize) {
      this.#account.dropped('queue_full', 1);
      return;
    }
    this.#queued++;
    this.#batch.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.#batch.forceFlush();
  }

  shutdown(): Promise<void> {
    this.#closed = true;
    return this.#batch.shutdown();
  }
}
