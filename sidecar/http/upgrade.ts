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

/** How long the next hop has to answer an upgrade (as the servers' head timeout), after which the client gets 504. */
export const UPGRADE_ANSWER_MS = 10_000;

export async function forwardUpgrade(req: H1Request, client: Duplex, head: Buffer, headers: Record<string, string | string[]>, connect: () => Promise<Duplex>, answerMs = UPGRADE_ANSWER_MS): Promise<number> {
  // A client that leaves before the answer takes the upstream connection with it, whenever it goes.
  let upstream: Duplex | null = null;
  let gone = false;
  client.once('close', () => {
    gone = true;
    upstream?.destroy();
  });
  upstream = await connect();
  if (gone) {
    upstream.destroy();
    return 0;
  }
  const up = upstream;
  let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries({ ...headers, connection: 'Upgrade', upgrade: req.headers.upgrade ?? '' })) {
    for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`;
  }
  up.write(text + '\r\n');

  let timer: NodeJS.Timeout | undefined;
  const response = await new Promise<Buffer>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.indexOf(HEAD_END) !== -1) {
        up.off('data', onData);
        up.pause();
        resolve(buf);
      } else if (buf.length > MAX_HEAD) reject(new Error('upgrade response head too large'));
    };
    up.on('data', onData);
    up.once('error', reject);
    up.once('end', () => reject(new Error('upstream closed before answering the upgrade')));
    up.once('close', () => reject(new Error('upstream closed before answering the upgrade')));
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer to the upgrade within ${answerMs / 1000} s`), { code: 'WEFT_UPGRADE_TIMEOUT' })), answerMs);
  }).finally(() => clearTimeout(timer)).catch((err: Error) => {
    up.destroy();
    throw err;
  });
  if (gone) return 0;
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(response.toString('latin1', 0, 16))?.[1] ?? 0);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
  client.write(response);
  if (status === 101) {
    if (head.length) up.write(head);
    up.pipe(client);
    client.pipe(up);
    up.resume();
  } else {
    // Not switching: relay the rest of this response, then close; the client's further bytes go nowhere.
    up.pipe(client);
    up.resume();
    up.on('end', () => client.end());
  }
  return status;
}
