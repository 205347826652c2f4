// node:http, loaded the CommonJS way.
//
// An ES `import http from 'node:http'` builds a module namespace by reading every export, and http's lazy
// getters (WebSocket, fetch and friends) then load Node's bundled undici and its web streams: about 13 MB in
// every sidecar, which never uses them. `process.getBuiltinModule` hands over the exports without reading them.
// Types still come from `import type`.

export const http = process.getBuiltinModule('node:http');
