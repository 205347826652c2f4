// The app for the proxy benchmark: nginx as one process answering a small fixed body, no files, no logs.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Child, Children } from './children.ts';

export const APP_BODY = 'ok\n';

/**
 * `grpc`: the app speaks h2c (HTTP/2 with prior knowledge) and answers every call gRPC-shaped: content-type
 * application/grpc, the body APP_BODY, then trailers with grpc-status 0. (The body is not a gRPC message frame:
 * nothing between the client and nginx reads it, and nginx cannot return one without a file, which it serves
 * to GET only.)
 */
export function startNginx(children: Children, binary: string, dir: string, port: number, opts: { grpc?: boolean } = {}): Child {
  const prefix = join(dir, opts.grpc ? 'nginx-grpc' : 'nginx');
  mkdirSync(join(prefix, 'temp'), { recursive: true });
  // Every path nginx would otherwise take from its compiled-in defaults under /var is set here, so it needs no root.
  // No master process: the one process serves, and a SIGKILL on the way out leaves no orphaned worker.
  // keepalive_requests is raised so that no client (wrk, hey, a proxy's pool) is made to reconnect every 1,000 requests.
  const conf = `daemon off;
master_process off;
pid ${prefix}/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/temp/body;
  proxy_temp_path ${prefix}/temp/proxy;
  fastcgi_temp_path ${prefix}/temp/fastcgi;
  uwsgi_temp_path ${prefix}/temp/uwsgi;
  scgi_temp_path ${prefix}/temp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {
${opts.grpc
    ? `    listen 127.0.0.1:${port} http2;
    default_type application/grpc;
    add_trailer grpc-status 0;`
    : `    listen 127.0.0.1:${port};
    default_type text/plain;`}
    location / { return 200 ${JSON.stringify(APP_BODY)}; }
  }
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  return children.start(opts.grpc ? 'nginx-grpc' : 'nginx', binary, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', 'stderr']);
}
