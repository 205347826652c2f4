// The mesh most HTTP/2 and gRPC relay tests need: a node:http2 app behind the `app` service's sidecar (protocol
// grpc), and the `web` sidecar that calls it, with `app` as a local upstream port.

import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startMesh, type SidecarProc, type TestMesh } from './mesh.ts';
import { meshYaml } from './mesh-yaml.ts';

export interface H2AppMesh {
  readonly mesh: TestMesh;
  /** the app's sidecar */
  readonly appSidecar: SidecarProc;
  /** the caller's sidecar */
  readonly web: SidecarProc;
  /** a new session to web's upstream port for `app` */
  connect(settings?: http2.Settings): http2.ClientHttp2Session;
  /** closes the sessions connect() made, the mesh and the app */
  stop(): Promise<void>;
}

/** Starts `app` on a free port and the two sidecars; `extra` is more mesh YAML (a Route for `app`, say). */
export async function h2AppMesh(app: http2.Http2Server, extra?: string): Promise<H2AppMesh> {
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  const mesh = await startMesh(meshYaml({ services: { web: '{port: 8080}', app: '{port: 8082, protocol: grpc}' }, extra }));
  const appSidecar = await mesh.sidecar({ service: 'app', appPort: (app.address() as AddressInfo).port });
  const web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['app'] });
  const sessions: http2.ClientHttp2Session[] = [];
  return {
    mesh,
    appSidecar,
    web,
    connect: (settings) => {
      const session = http2.connect(`http://127.0.0.1:${web.ports.upstreams.app}`, settings ? { settings } : {});
      sessions.push(session);
      return session;
    },
    stop: async () => {
      for (const s of sessions) s.destroy();
      await mesh.stop();
      app.close();
    },
  };
}
