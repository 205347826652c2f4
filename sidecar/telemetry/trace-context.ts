// Trace context into and out of the sidecar. The caller's context is read from W3C traceparent/tracestate, or
// from B3 (the single `b3` header or the multi `x-b3-*` headers) when that is what the caller speaks; the next
// hop always gets W3C, and B3 too, in the caller's own format, so a B3-only app downstream stays in the trace.

import { randomBytes } from 'node:crypto';
import type { Context, TextMapGetter, TextMapPropagator, TextMapSetter } from '@opentelemetry/api';
import type { Otel } from './otel.ts';

export type B3Format = 'single' | 'multi' | null;
export type HeaderLookup = (name: string) => string | string[] | undefined;

const getter: TextMapGetter<HeaderLookup> = { keys: () => [], get: (lookup, key) => lookup(key) };
const setter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};

/**
 * A B3 caller's "do not sample" sent alone, with no trace to join (`b3: 0`, or `x-b3-sampled: 0` without a trace
 * ID): B3's way to say no trace. OpenTelemetry's B3 propagator drops such a header, so it is read here.
 */
function b3DenyOnly(header: HeaderLookup): boolean {
  if (header('b3') === '0') return true;
  const sampled = header('x-b3-sampled');
  return (sampled === '0' || sampled === 'false') && header('x-b3-traceid') === undefined;
}

/** Which B3 encoding a request used, if any. */
export function b3Format(header: HeaderLookup): B3Format {
  if (header('b3') !== undefined) return 'single';
  if (header('x-b3-traceid') !== undefined) return 'multi';
  return null;
}

export class TraceContextCodec {
  readonly #api: Otel['api'];
  readonly #w3c: TextMapPropagator;
  /** extracts either B3 encoding; injects the single header */
  readonly #b3Single: TextMapPropagator;
  readonly #b3Multi: TextMapPropagator;

  constructor(otel: Otel) {
    this.#api = otel.api;
    this.#w3c = new otel.core.W3CTraceContextPropagator();
    this.#b3Single = new otel.b3.B3Propagator({ injectEncoding: otel.b3.B3InjectEncoding.SINGLE_HEADER });
    this.#b3Multi = new otel.b3.B3Propagator({ injectEncoding: otel.b3.B3InjectEncoding.MULTI_HEADER });
  }

  /** The caller's context (ROOT_CONTEXT when it sent none or an invalid one); W3C wins when both are present. */
  extract(header: HeaderLookup): { parent: Context; b3: B3Format } {
    const root = this.#api.ROOT_CONTEXT;
    const b3 = b3Format(header);
    let parent = this.#w3c.extract(root, header, getter);
    if (b3 && !this.#api.trace.getSpanContext(parent)) parent = this.#b3Single.extract(root, header, getter);
    if (!this.#api.trace.getSpanContext(parent) && (b3 !== null || header('x-b3-sampled') !== undefined) && b3DenyOnly(header)) {
      // Not sampled, as the caller asked: a parent that is not sampled makes the span a non-recording one (the
      // sampler is parent-based), and the next hop is told the same.
      const context = { traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), traceFlags: this.#api.TraceFlags.NONE, isRemote: true };
      parent = this.#api.trace.setSpanContext(root, context);
    }
    return { parent, b3: b3 ?? (header('x-b3-sampled') !== undefined ? 'multi' : null) };
  }

  /**
   * Headers carrying `context` to the next hop. They replace every trace header the caller sent, also those they
   * do not set (./propagation.ts); for multi-header B3, `x-b3-parentspanid` is set too (to the span that is the
   * parent of the one sent).
   */
  inject(context: Context, b3: B3Format, parentSpanId: string | undefined): Record<string, string> {
    const out: Record<string, string> = {};
    this.#w3c.inject(context, out, setter);
    if (b3 === 'single') this.#b3Single.inject(context, out, setter);
    else if (b3 === 'multi') {
      this.#b3Multi.inject(context, out, setter);
      if (parentSpanId) out['x-b3-parentspanid'] = parentSpanId;
    }
    return out;
  }
}
