// The OpenTelemetry packages, imported on first use: a sidecar whose Mesh config has no tracing never loads
// them (they cost about 10 MB of RSS per sidecar).

export async function loadOtel() {
  const [api, core, sdk, resources, exporter, b3] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/exporter-trace-otlp-proto'),
    import('@opentelemetry/propagator-b3'),
  ]);
  return { api, core, sdk, resources, exporter, b3 };
}

export type Otel = Awaited<ReturnType<typeof loadOtel>>;
