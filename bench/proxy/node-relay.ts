// The Node floor: the two hops of a sidecar pair done by the least a Node process can do, for comparison.
//
// `client FRONT TLS_PORT DIR`: plain TCP in on FRONT, each connection relayed byte for byte over its own mTLS
// connection to TLS_PORT. `server TLS_PORT APP DIR`: mTLS in (client certificate required), each connection
// relayed to APP. No HTTP parsing, no routing, no policy, no metrics: one connection upstream per connection in,
// so keep-alive load reuses them. DIR holds haproxy's files (bundle.pem, client.pem, server.pem: chain then key).
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';

const [mode, a, b, dir] = process.argv.slice(2);
const read = (f: string) => readFileSync(join(dir!, f), 'utf8');
const ca = read('bundle.pem');

function relay(x: net.Socket, y: net.Socket): void {
  x.setNoDelay(true);
  y.setNoDelay(true);
  x.on('data', (d) => y.write(d));
  y.on('data', (d) => x.write(d));
  const end = () => {
    x.destroy();
    y.destroy();
  };
  x.on('close', end).on('error', end);
  y.on('close', end).on('error', end);
}

if (mode === 'client') {
  const pem = read('client.pem');
  net.createServer((down) => relay(down, tls.connect({ host: '127.0.0.1', port: Number(b), cert: pem, key: pem, ca, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined }))).listen(Number(a), '127.0.0.1');
} else {
  const pem = read('server.pem');
  tls.createServer({ cert: pem, key: pem, ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (down) => relay(down, net.connect(Number(b), '127.0.0.1'))).listen(Number(a), '127.0.0.1');
}
