// Forwarding an HTTP/1.1 Upgrade (WebSocket): relay the request, and switch to a byte tunnel only on a real 101.
//
// Anything else the next hop answers is relayed as an ordinary response and the connection closed, so a
// refused upgrade can never leave a tunnel open to something that did not agree to one (DESIGN.md, security).
// The client's bytes after the request head (`head`, and whatever follows) are the new protocol's: they are held
// until the 101, and dropped without it. Sent earlier, an app that did not switch would read them as the next
// HTTP request on its connection, one the sidecar never authorized, with whatever headers the caller wrote.

import type { H1Request } from './h1-message.ts';
import type { Duplex } from 'node:stream';

const HEAD_END = Buffer.from('\r\n\r\n');
const MAX_HEAD = 64 * 1024;

export async function forwardUpgrade(req: H1Request, client: Duplex, head: Buffer, headers: Record<string, string | string[]>, connect: () => Promise<Duplex>): Promise<number> {
  const upstream = await connect();
  let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries({ ...headers, connection: 'Upgrade', upgrade: req.headers.upgrade ?? '' })) {
    for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`;
  }
  upstream.write(text + '\r\n');

  const response = await new Promise<Buffer>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.indexOf(HEAD_END) !== -1) {
        upstream.off('data', onData);
        upstream.pause();
        resolve(buf);
      } else if (buf.length > MAX_HEAD) reject(new Error('upgrade response head too large'));
    };
    upstream.on('data', onData);
    upstream.once('error', reject);
    upstream.once('end', () => reject(new Error('upstream closed before answering the upgrade')));
  });
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(response.toString('latin1', 0, 16))?.[1] ?? 0);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.write(response);
  if (status === 101) {
    if (head.length) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
    upstream.resume();
  } else {
    // Not switching: relay the rest of this response, then close; the client's further bytes go nowhere.
    upstream.pipe(client);
    upstream.resume();
    upstream.on('end', () => client.end());
  }
  return status;
}
