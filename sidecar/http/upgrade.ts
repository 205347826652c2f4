// Forwarding an HTTP/1.1 Upgrade (WebSocket): relay the request, and switch to a byte tunnel only on a real 101.
//
// Anything else the next hop answers is relayed as an ordinary response and the connection closed once it has
// ended, so a refused upgrade can never leave a tunnel open to something that did not agree to one (DESIGN.md,
// security).
// The client's bytes after the request head (`head`, and whatever follows) are the new protocol's: they are held
// until the 101, and dropped without it. Sent earlier, an app that did not switch would read them as the next
// HTTP request on its connection, one the sidecar never authorized, with whatever headers the caller wrote.

import type { H1Request } from './h1-message.ts';
import type { Duplex } from 'node:stream';
import { HTTPParser, kOnHeadersComplete, kOnMessageComplete } from './llhttp.ts';

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
  if (status === 101) {
    client.write(response);
    if (head.length) up.write(head);
    up.pipe(client);
    client.pipe(up);
    up.resume();
  } else relayRefusal(response, up, client);
  return status;
}

/**
 * Not switching: relays this one answer, then closes both connections; the client's further bytes go nowhere. llhttp
 * finds where the answer ends: a next hop that keeps its connection alive (a node:http app with no upgrade handler
 * does) would otherwise hold both for ever, and the client, told keep-alive, would send its next request into a
 * connection nobody reads. So its Connection and Keep-Alive headers become `connection: close`.
 */
function relayRefusal(response: Buffer, up: Duplex, client: Duplex): void {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
  let final = false;
  let ended = false;
  parser[kOnHeadersComplete] = (_major: number, _minor: number, _headers: unknown, _method: unknown, _url: unknown, status: number) => {
    final = status >= 200 || status === 101;
    return 0;
  };
  parser[kOnMessageComplete] = () => {
    if (final) ended = true;
  };
  let open = true;
  const close = (cut: boolean): void => {
    if (!open) return;
    open = false;
    up.off('data', relay);
    up.destroy();
    parser.close();
    const socket = client as Duplex & { destroySoon?: () => void };
    if (cut) client.destroy();
    else if (socket.destroySoon) socket.destroySoon(); // (nothing more is read from it: closed once the answer has gone)
    else client.end();
  };
  const relay = (chunk: Buffer): void => {
    if (parser.execute(chunk) instanceof Error) return close(true); // not HTTP: cut off
    if (!client.write(chunk)) {
      up.pause();
      client.once('drain', () => up.resume());
    }
    if (ended) close(false);
  };
  if (parser.execute(response) instanceof Error) return close(true);
  const headEnd = response.indexOf(HEAD_END) + HEAD_END.length;
  client.write(closingHead(response.toString('latin1', 0, headEnd)), 'latin1');
  if (headEnd < response.length) client.write(response.subarray(headEnd));
  if (ended) return close(false);
  up.on('data', relay);
  up.once('end', () => close(false)); // (an answer delimited by the connection's end, or one cut short)
  up.resume();
}

/** A response head (validated by llhttp) with its Connection and Keep-Alive headers replaced by `connection: close`. */
function closingHead(head: string): string {
  const lines = head.slice(0, -4).split('\r\n');
  const kept = lines.filter((line, i) => {
    if (i === 0) return true;
    const name = line.slice(0, line.indexOf(':')).trim().toLowerCase();
    return name !== 'connection' && name !== 'keep-alive';
  });
  return `${kept.join('\r\n')}\r\nconnection: close\r\n\r\n`;
}
