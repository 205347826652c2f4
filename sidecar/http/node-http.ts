// node:http and node:http2, loaded the CommonJS way, and node:http2 only when first needed.
//
// An ES `import http from 'node:http'` builds a module namespace by reading every export, and http's lazy
// getters (WebSocket, fetch and friends) then load Node's bundled undici and its web streams: about 13 MB in
// every sidecar, which never uses them. `process.getBuiltinModule` hands over the exports without reading them.
// Types still come from `import type`.

export const http = process.getBuiltinModule('node:http');

let h2: typeof import('node:http2') | undefined;

/**
 * node:http2, loaded on first use: about 4 MB of RSS (nghttp2 and its session machinery) that a sidecar whose
 * services all speak HTTP/1.1 never needs. HTTP/2 and gRPC traffic loads it (the control-plane stream is
 * HTTP/1.1: control-plane/client.ts).
 */
export function http2(): typeof import('node:http2') {
  return (h2 ??= process.getBuiltinModule('node:http2'));
}
