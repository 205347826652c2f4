// Pushing snapshots: coalesce changes, build each distinct snapshot once, send each sidecar only what changed.
//
// "Does this sidecar need a push" is answered by content: sidecars of one service share one built snapshot,
// split into named resources with a hash each; a sidecar is sent the resources whose hash differs from what it
// was last sent. If none does it is still told the new version, in an empty delta, so that every sidecar in
// sync holds the version `weft apply` and `weft status` report. Building is the builder's job (snapshot/).

import { createHash } from 'node:crypto';
import { sseEvent } from './sse.ts';

export interface Subscriber {
  readonly id: string;
  /** sidecars with the same key get the same snapshot (e.g. "service.namespace") */
  readonly key: string;
  /** returns false when the stream's buffer is full; the pusher then waits for `onDrain` */
  write(chunk: string): boolean;
  onDrain(resume: () => void): void;
  /** called with the version each time a snapshot is written */
  sent(version: number): void;
}

/** One resource, serialised once per build and shared by every sidecar that receives it. */
export interface BuiltResource {
  readonly hash: string;
  readonly json: string;
}

export type BuiltSnapshot = ReadonlyMap<string, BuiltResource>;

/** What the pusher tells metrics (../metrics.ts): once per version and per snapshot written, nothing allocated. */
export interface PushObserver {
  /** the clock a change's time is read from (monotonic, ms) */
  now(): number;
  /** a new version, carrying changes the first of which happened at `changedAt` */
  versionMade(version: number, changedAt: number): void;
  snapshotSent(full: boolean): void;
}

/**
 * Serialises and hashes resources. A resource object shared by several snapshots (an upstream seen by every
 * sidecar in a namespace) is serialised once per push, found again through `cache` by identity.
 */
export function built(resources: ReadonlyMap<string, unknown>, cache?: WeakMap<object, BuiltResource>): BuiltSnapshot {
  const out = new Map<string, BuiltResource>();
  for (const [name, value] of resources) {
    const shared = typeof value === 'object' && value !== null ? cache?.get(value) : undefined;
    if (shared) {
      out.set(name, shared);
      continue;
    }
    const json = JSON.stringify(value);
    const r = { json, hash: createHash('sha256').update(json).digest('base64url').slice(0, 22) };
    if (typeof value === 'object' && value !== null) cache?.set(value, r);
    out.set(name, r);
  }
  return out;
}

interface SubscriberState extends Subscriber {
  /** resource name → hash last sent; null before the first (full) snapshot */
  sentHashes: Map<string, string> | null;
  /** waiting for the stream to drain: a slow sidecar gets one coalesced delta when it can take it */
  blocked: boolean;
  /** the version of the last delta written, -1 before the first */
  sentVersion: number;
}

export class SnapshotPusher {
  readonly #subscribers = new Map<string, SubscriberState>();
  readonly #build: (key: string, version: number) => BuiltSnapshot;
  #cache = new Map<string, BuiltSnapshot>();
  readonly #debounceMs: number;
  #version: number;
  #timer: NodeJS.Timeout | null = null;
  readonly #observer: PushObserver;
  /** when the first change waiting for the debounce happened (observer's clock) */
  #changedAt = 0;

  /**
   * `initialVersion` should grow across restarts (the control plane passes the clock), so versions only increase.
   * `debounceMs` gathers a burst of endpoint changes (a deployment rolling) into one push, as Istio's debounce does.
   */
  constructor(opts: { build: (key: string, version: number) => BuiltSnapshot; initialVersion: number; debounceMs?: number; observer: PushObserver }) {
    this.#build = opts.build;
    this.#observer = opts.observer;
    this.#version = opts.initialVersion;
    this.#debounceMs = opts.debounceMs ?? 100;
  }

  get version(): number {
    return this.#version;
  }

  get size(): number {
    return this.#subscribers.size;
  }

  subscribe(sub: Subscriber): void {
    const state: SubscriberState = { ...sub, sentHashes: null, blocked: false, sentVersion: -1 };
    this.#subscribers.set(sub.id, state);
    sub.onDrain(() => {
      state.blocked = false;
      if (this.#subscribers.get(sub.id) === state) this.#send(state);
    });
    this.#send(state);
  }

  unsubscribe(id: string, sub?: Subscriber): void {
    const current = this.#subscribers.get(id);
    if (current && (!sub || current.write === sub.write)) this.#subscribers.delete(id);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Endpoints changed: push once the burst is over (at most `debounceMs` later). */
  schedule(): void {
    if (this.#timer) return;
    this.#changedAt = this.#observer.now();
    this.#timer = setTimeout(() => this.pushNow(), this.#debounceMs);
    this.#timer.unref();
  }

  /** An operator's change: rebuild and push at once (any pending endpoint push is folded in). */
  pushNow(): void {
    // A push folding in endpoint changes counts its convergence from the first of them, as Istio's does.
    const changedAt = this.#timer ? this.#changedAt : this.#observer.now();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#cache = new Map();
    this.#version++;
    this.#observer.versionMade(this.#version, changedAt);
    for (const sub of this.#subscribers.values()) this.#send(sub);
  }

  #snapshot(key: string): BuiltSnapshot {
    let b = this.#cache.get(key);
    if (!b) {
      b = this.#build(key, this.#version);
      this.#cache.set(key, b);
    }
    return b;
  }

  #send(sub: SubscriberState): void {
    if (sub.blocked) return;
    const snapshot = this.#snapshot(sub.key);
    const full = sub.sentHashes === null;
    const previous = sub.sentHashes ?? new Map<string, string>();
    const parts: string[] = [];
    for (const [name, r] of snapshot) {
      if (previous.get(name) !== r.hash) parts.push(`${JSON.stringify(name)}:${r.json}`);
    }
    const removed = [...previous.keys()].filter((name) => !snapshot.has(name));
    if (!full && parts.length === 0 && removed.length === 0 && sub.sentVersion === this.#version) return;
    sub.sentVersion = this.#version;
    sub.sentHashes = new Map([...snapshot].map(([name, r]) => [name, r.hash]));
    // Resources are spliced in as already-serialised JSON: no per-sidecar JSON.stringify of the snapshot.
    const ok = sub.write(sseEvent('snapshot', `{"version":${this.#version},"full":${full},"resources":{${parts.join(',')}},"removed":${JSON.stringify(removed)}}`, this.#version));
    sub.sent(this.#version);
    this.#observer.snapshotSent(full);
    sub.blocked = !ok;
  }
}
