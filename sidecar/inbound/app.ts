// The local app as the inbound side reaches it: a keep-alive HTTP/1.1 pool, one h2c session, or TCP.

import type * as http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { H1Pool } from '../http/h1-client.ts';
import { http2 as loadHttp2 } from '../http/node-http.ts';

export class AppConnector {
  readonly pool: H1Pool;
  readonly #host: string;
  readonly #port: number;
  #h2: http2.ClientHttp2Session | null = null;
  /** the sessions whose connection to the app was made */
  readonly #h2Connected = new WeakSet<http2.ClientHttp2Session>();

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
    this.pool = new H1Pool({ connections: 256, keepAliveMs: 30_000, connect: () => net.connect({ host, port }), readyEvent: 'connect' });
  }

  /** One cleartext HTTP/2 session to the app (prior knowledge), re-opened if it closes. */
  h2Session(): http2.ClientHttp2Session {
    if (this.#h2 && !this.#h2.closed && !this.#h2.destroyed) return this.#h2;
    const session = loadHttp2().connect(`http://${this.#host.includes(':') ? `[${this.#host}]` : this.#host}:${this.#port}`);
    session.on('error', () => {});
    session.once('connect', () => this.#h2Connected.add(session));
    session.on('close', () => {
      if (this.#h2 === session) this.#h2 = null;
    });
    this.#h2 = session;
    return session;
  }

  /** Whether `session` (from h2Session) got its connection to the app: a stream failed on one that did not never reached the app. */
  connected(session: http2.ClientHttp2Session): boolean {
    return this.#h2Connected.has(session);
  }

  connectTcp(): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.#host, port: this.#port, noDelay: true });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  pipeTcp(peer: Duplex, onError: (err: Error) => void): void {
    peer.pause();
    this.connectTcp().then(
      (app) => {
        app.on('error', () => peer.destroy());
        peer.on('error', () => app.destroy());
        // A caller's connection closed by the mesh (revoked, expired, no longer allowed) takes the app's with it.
        peer.once('close', () => app.destroy());
        peer.pipe(app);
        app.pipe(peer);
        peer.resume();
      },
      (err: Error) => {
        onError(err);
        peer.destroy();
      },
    );
  }

  close(): void {
    void this.pool.close();
    this.#h2?.close();
  }
}
