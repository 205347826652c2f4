// The span export queue: the SDK's BatchSpanProcessor (batched, bounded, exported on a timer, never on the
// request path), with every span it would lose counted. A slow or absent collector fills the queue, and from then
// on spans are dropped at the door (reason queue_full) instead of piling up in memory; an export the collector
// refuses or never answers loses its batch (reason export_failed).

import type { Context } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Otel } from './otel.ts';

export interface SpanAccount {
  exported(n: number): void;
  dropped(reason: 'queue_full' | 'export_failed', n: number): void;
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

  constructor(otel: Otel, exporter: SpanExporter, limits: QueueLimits, account: SpanAccount) {
    this.#account = account;
    this.#limits = limits;
    this.#sampled = otel.api.TraceFlags.SAMPLED;
    const SUCCESS = otel.core.ExportResultCode.SUCCESS;
    const counting: SpanExporter = {
      export: (spans: ReadableSpan[], done: (r: ExportResult) => void) => {
        // The batch processor takes a batch off its queue just before it calls export.
        this.#queued -= spans.length;
        exporter.export(spans, (result) => {
          if (result.code === SUCCESS) {
            account.exported(spans.length);
            if (this.#failing) account.health(null);
            this.#failing = false;
          } else {
            account.dropped('export_failed', spans.length);
            if (!this.#failing) account.health(result.error ?? new Error('export failed'));
            this.#failing = true;
          }
          done(result);
        });
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
