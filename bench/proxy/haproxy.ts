// The reference pair: two haproxy processes doing the sidecars' two hops, plain HTTP in, mTLS between, plain HTTP out.
//
// Their certificates come from Weft's own CA library, so both pairs use the same keys (ECDSA P-256) and the same
// SPIFFE X.509-SVID profile. haproxy checks the peer's chain against the bundle but, unlike a Weft sidecar, not
// its SPIFFE ID (haproxy has no fetch for a URI SAN); that check is a string compare, small beside a handshake.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CaStore } from '../../ca/store.ts';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { csrFor } from '../../test/helpers/stub-sidecar.ts';
import type { Child, Children } from './children.ts';

export interface HaproxyPorts {
  /** plain HTTP in: where the load goes (the client-side proxy) */
  readonly front: number;
  /** mTLS between the two */
  readonly tls: number;
  /** the app */
  readonly app: number;
}

export interface HaproxyPair {
  readonly client: Child;
  readonly server: Child;
}

const TRUST_DOMAIN = 'bench.example';

async function writeCertificates(dir: string): Promise<{ bundle: string; client: string; server: string }> {
  const store = await CaStore.init(join(dir, 'ca'), { trustDomain: TRUST_DOMAIN });
  const authority = store.authority();
  const files = { bundle: join(dir, 'bundle.pem'), client: join(dir, 'client.pem'), server: join(dir, 'server.pem') };
  writeFileSync(files.bundle, store.bundle.toPem());
  for (const sa of ['client', 'server'] as const) {
    const keys = generateKeyPair();
    const svid = authority.sign(await csrFor(keys), `spiffe://${TRUST_DOMAIN}/ns/default/sa/${sa}`, { ttlSeconds: 24 * 3600 });
    // haproxy's `crt` file: the leaf, its intermediate, then the key.
    writeFileSync(files[sa], svid.chainPem + privateKeyToPem(keys.privateKey), { mode: 0o600 });
  }
  return files;
}

// One thread each, like one Node process per sidecar. No logging, so neither pair pays for it.
const GLOBAL = `global
  nbthread 1
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3

defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
`;

/**
 * `h2`: HTTP/2 all the way, as the sidecars carry gRPC: h2c in (prior knowledge), h2 over mTLS between (ALPN h2),
 * h2c to the app.
 */
export async function startHaproxyPair(children: Children, binary: string, dir: string, ports: HaproxyPorts, opts: { h2?: boolean } = {}): Promise<HaproxyPair> {
  const home = join(dir, opts.h2 ? 'haproxy-h2' : 'haproxy');
  const h2 = (words: string) => (opts.h2 ? ` ${words}` : '');
  mkdirSync(home, { recursive: true });
  const certs = await writeCertificates(home);

  // A: the client side. Plain HTTP from the app, then mTLS to B, verifying B's chain; idle connections to B are kept.
  const clientConf = `${GLOBAL}
frontend from_app
  bind 127.0.0.1:${ports.front}${h2('proto h2')}
  default_backend to_server_side

backend to_server_side
  server b 127.0.0.1:${ports.tls} ssl verify required ca-file ${certs.bundle} crt ${certs.client} ssl-min-ver TLSv1.3${h2('alpn h2')}
`;
  // B: the server side. mTLS in, a client certificate required and verified, then plain HTTP to the app.
  const serverConf = `${GLOBAL}
frontend from_mesh
  bind 127.0.0.1:${ports.tls} ssl crt ${certs.server} ca-file ${certs.bundle} verify required ssl-min-ver TLSv1.3${h2('alpn h2')}
  default_backend to_app

backend to_app
  server app 127.0.0.1:${ports.app}${h2('proto h2')}
`;
  writeFileSync(join(home, 'client.cfg'), clientConf);
  writeFileSync(join(home, 'server.cfg'), serverConf);
  // -db: stay in the foreground, one process each, so its pid is the one measured and stopped.
  const server = children.start(opts.h2 ? 'haproxy-h2-server' : 'haproxy-server', binary, ['-db', '-f', join(home, 'server.cfg')]);
  const client = children.start(opts.h2 ? 'haproxy-h2-client' : 'haproxy-client', binary, ['-db', '-f', join(home, 'client.cfg')]);
  return { client, server };
}
