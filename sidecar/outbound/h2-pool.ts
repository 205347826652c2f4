// HTTP/2 sessions to one peer endpoint: one in the common case, another when those open carry as many streams
// as the peer allows (its SETTINGS_MAX_CONCURRENT_STREAMS), as Envoy's HTTP/2 pool does, up to the TrafficPolicy's
// maxConnections. nghttp2 would queue a stream past the peer's limit with no bound, so a long-lived stream holding
// every slot would leave each further call hanging; past maxConnections the stream is refused at once instead.

import type * as http2 from 'node:http2';
import type { H2Target } from '../http/h2-proxy.ts';
import { DRAINING_GOAWAY, MAX_CONCURRENT_STREAMS } from '../http/servers.ts';

/** Every endpoint is a Weft inbound, which advertises this: assumed until a session's SETTINGS come. */
export const PEER_MAX_CONCURRENT_STREAMS = MAX_CONCURRENT_STREAMS;

/** Every session to the endpoint is at the peer's stream limit, and maxConnections allows no other. */
export class H2PoolFullError extends Error {
  readonly code = 'WEFT_H2_POOL_FULL';
}

interface Slot {
  readonly session: http2.ClientHttp2Session;
  /** streams opened on it and not closed yet */
  streams: number;
}

export interface H2PoolOptions {
  /** where the sessions go, for messages */
  readonly address: string;
  /** TrafficPolicy connectionPool.maxConnections: sessions taking new streams at once */
  readonly connections: number;
  /** opens a session, with peerMaxConcurrentStreams: PEER_MAX_CONCURRENT_STREAMS */
  readonly connect: () => http2.ClientHttp2Session;
  /** told when `draining` changes */
  readonly onDraining?: (draining: boolean) => void;
}

export class H2Pool implements H2Target {
  readonly #address: string;
  readonly #connect: () => http2.ClientHttp2Session;
  readonly #onDraining: (draining: boolean) => void;
  #connections: number;
  #slots: Slot[] = [];
  #goneAway = false;

  constructor(opts: H2PoolOptions) {
    if (!(opts.connections >= 1)) throw new RangeError(`an HTTP/2 pool needs at least one connection, not ${opts.connections}`);
    this.#address = opts.address;
    this.#connections = opts.connections;
    this.#connect = opts.connect;
    this.#onDraining = opts.onDraining ?? (() => {});
  }

  /**
   * The peer sent GOAWAY (it is draining) and no session has connected since: new calls should go to another
   * endpoint while there is one, rather than to a listener that is closing.
   */
  get draining(): boolean {
    return this.#goneAway;
  }

  /** No stream can be opened now: every session is at the peer's limit and no other may be opened. */
  get full(): boolean {
    return this.#withRoom() === null && this.#slots.length >= this.#connections;
  }

  /** A new connection limit (a config push): sessions over it are not closed, only no new ones are opened. */
  resize(connections: number): void {
    this.#connections = connections;
  }

  /** Opens a stream on the first session with room, or on a new one; throws H2PoolFullError when neither is possible. */
  request(headers: http2.OutgoingHttpHeaders, options?: http2.ClientSessionRequestOptions): http2.ClientHttp2Stream {
    let slot = this.#withRoom();
    if (!slot) {
      if (this.#slots.length >= this.#connections) {
        throw new H2PoolFullError(`every connection to ${this.#address} (maxConnections ${this.#connections}) carries as many streams as the peer allows`);
      }
      slot = this.#open();
    }
    const stream = slot.session.request(headers, options);
    const s = slot;
    s.streams++;
    stream.once('close', () => s.streams--);
    return stream;
  }

  close(): void {
    for (const { session } of this.#slots) session.close();
    this.#slots = [];
  }

  /** The first session that takes new streams and has room for one; sessions closing are dropped on the way. */
  #withRoom(): Slot | null {
    for (let i = 0; i < this.#slots.length; i++) {
      const slot = this.#slots[i]!;
      if (slot.session.closed || slot.session.destroyed) {
        this.#slots.splice(i--, 1);
        continue;
      }
      if (slot.streams < (slot.session.remoteSettings.maxConcurrentStreams ?? PEER_MAX_CONCURRENT_STREAMS)) return slot;
    }
    return null;
  }

  #open(): Slot {
    const session = this.#connect();
    const slot: Slot = { session, streams: 0 };
    session.on('error', () => {});
    session.once('connect', () => this.#setGoneAway(false));
    // node:http2 closes the session on a GOAWAY (streams in flight finish); it takes no new ones from then on.
    session.once('goaway', (_code: number, _last: number, data?: Buffer) => {
      // Only a draining peer's GOAWAY turns new calls away from the endpoint; an idle session's just ends.
      if (data?.equals(DRAINING_GOAWAY)) this.#setGoneAway(true);
      this.#drop(slot);
    });
    session.once('close', () => this.#drop(slot));
    this.#slots.push(slot);
    return slot;
  }

  #setGoneAway(goneAway: boolean): void {
    if (goneAway === this.#goneAway) return;
    this.#goneAway = goneAway;
    this.#onDraining(goneAway);
  }

  #drop(slot: Slot): void {
    const i = this.#slots.indexOf(slot);
    if (i !== -1) this.#slots.splice(i, 1);
  }
}
