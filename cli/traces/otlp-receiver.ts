// An OTLP/HTTP trace receiver on loopback (weft traces, and the tests' collector): each export is decoded with
// OpenTelemetry's own protobuf definitions (the protobufjs root generated from opentelemetry-proto, as shipped in
// @opentelemetry/otlp-transformer 0.216, installed as otlp-transformer-protobufjs), never a parser of ours.
// For tests it can also be slow on purpose: accept exports and never answer them.

import { once } from 'node:events';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

const require = createRequire(import.meta.url);

interface ProtoMessageType {
  decode(bytes: Uint8Array): unknown;
  toObject(message: unknown, options: Record<string, unknown>): unknown;
}
const root = require('otlp-transformer-protobufjs/build/src/generated/root.js') as {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: ProtoMessageType; ExportTraceServiceResponse: { encode(m: object): { finish(): Uint8Array } } } } } } };
};
const { ExportTraceServiceRequest, ExportTraceServiceResponse } = root.opentelemetry.proto.collector.trace.v1;

/** opentelemetry.proto.trace.v1.Span.SpanKind */
export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span */
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Record<string, string | number | boolean>;
  /** status.code: 0 unset, 1 ok, 2 error */
  readonly status: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  /** the exporting process's resource attributes (service.name, ...) */
  readonly resource: Record<string, string | number | boolean>;
}

interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface DecodedRequest {
  resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: DecodedSpan[] }[] }[];
}
interface DecodedSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId?: Uint8Array;
  name: string;
  kind: number;
  attributes?: KeyValue[];
  status?: { code?: number };
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

function attributes(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    if (!value) continue;
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
  }
  return out;
}

/** Decodes one ExportTraceServiceRequest (protobuf bytes) into flat spans. */
export function decodeExport(body: Uint8Array): ReceivedSpan[] {
  // 64-bit integers as strings (nanosecond times), enums as numbers; bytes (trace and span IDs) stay bytes.
  const req = ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(body), { longs: String, enums: Number, defaults: false }) as DecodedRequest;
  const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : '');
  const spans: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          name: s.name,
          kind: s.kind,
          attributes: attributes(s.attributes),
          status: s.status?.code ?? 0,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          resource,
        });
      }
    }
  }
  return spans;
}

export interface OtlpReceiver {
  /** the traces URL for Mesh.tracing.endpoint */
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** export requests received (answered or not) */
  readonly exports: () => number;
  /** waits until `pick` finds what it wants among the spans received so far */
  waitFor<T>(what: string, pick: (spans: readonly ReceivedSpan[]) => T | undefined, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

/** `hang`: read each export and never answer it (a collector that is up but stuck). */
export async function startOtlpReceiver(opts: { hang?: boolean; host?: string; port?: number; onSpans?: (spans: readonly ReceivedSpan[]) => void } = {}): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  let exports = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      exports++;
      if (opts.hang) return;
      if (req.method !== 'POST' || req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/x-protobuf') {
        res.writeHead(400).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      try {
        const got = decodeExport(body);
        spans.push(...got);
        opts.onSpans?.(got);
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`undecodable export: ${(err as Error).message}`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(ExportTraceServiceResponse.encode({}).finish()));
    });
  });
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${(server.address() as AddressInfo).port}/v1/traces`,
    spans,
    exports: () => exports,
    async waitFor(what, pick, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const found = pick(spans);
        if (found !== undefined) return found;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; received ${spans.length} span(s): ${spans.map((s) => `${s.name} (kind ${s.kind})`).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
