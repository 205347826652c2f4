// The app for the proxy benchmark: nginx as one process answering a small fixed body, no files, no logs.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Child, Children } from './children.ts';

export const APP_BODY = 'ok\n';

export function startNginx(children: Children, binary: string, dir: string, port: number): Child {
  const prefix = join(dir, 'nginx');
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
    listen 127.0.0.1:${port};
    default_type text/plain;
    location / { return 200 ${JSON.stringify(APP_BODY)}; }
  }
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  return children.start('nginx', binary, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', 'stderr']);
}
