// The OpenTelemetry packages, loaded on first use: a sidecar whose Mesh config has no tracing never loads them.
//
// Their CommonJS builds, through require: the ES builds import node built-ins as namespaces (which runs every
// lazy getter) and load as more, separate modules; with require, tracing costs a sidecar about 14 MB of RSS
// instead of 19.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export async function loadOtel() {
  return {
    api: require('@opentelemetry/api') as typeof import('@opentelemetry/api'),
    core: require('@opentelemetry/core') as typeof import('@opentelemetry/core'),
    sdk: require('@opentelemetry/sdk-trace') as typeof import('@opentelemetry/sdk-trace'),
    resources: require('@opentelemetry/resources') as typeof import('@opentelemetry/resources'),
    exporter: require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto'),
    b3: require('@opentelemetry/propagator-b3') as typeof import('@opentelemetry/propagator-b3'),
    // For the exporter's agent; required when used (an ES import of node:http would run its lazy getters).
    http: () => require('node:http') as typeof import('node:http'),
    https: () => require('node:https') as typeof import('node:https'),
  };
}

export type Otel = Awaited<ReturnType<typeof loadOtel>>;
