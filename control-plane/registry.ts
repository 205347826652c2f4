// The registry of connected sidecars: who they are, where their inbound listens, and what config they hold.

export interface SidecarRegistration {
  /** chosen by the sidecar, unique per process (it reconnects with the same ID) */
  readonly id: string;
  readonly identity: string;
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** host:port of its inbound listener, as peers should dial it */
  readonly address: string;
  /** host:port of its admin port (/ready, /metrics), as the operator's CLI reaches it; null if not given */
  readonly admin: string | null;
}

export type AckState = 'SENT' | 'ACK' | 'NACK' | 'NONE';

export interface SidecarEntry extends SidecarRegistration {
  readonly connectedAt: number;
  /** distinguishes this registration from an earlier one of the same sidecar (a reconnect, a rotation) */
  readonly generation: number;
  lastSeen: number;
  certSerial: string;
  certNotAfter: number;
  /** version of the last snapshot sent, and what the sidecar said about it */
  sentVersion: number | null;
  /** version of the first snapshot sent (its stream's full one): ACKs of later ones count for convergence */
  firstSentVersion: number | null;
  ackedVersion: number | null;
  nack: { version: number; error: string } | null;
}

/** An instance of a service as the sidecars calling it see it. Its identity is the service's (Upstream.expectedIdentities). */
export interface Endpoint {
  /** host:port of the instance's inbound listener */
  readonly address: string;
  readonly labels: Readonly<Record<string, string>>;
}

export class Registry {
  readonly #entries = new Map<string, SidecarEntry>();
  #generation = 0;
  readonly #onEndpointsChange: (serviceKey: string) => void;

  constructor(opts: { onEndpointsChange?: (serviceKey: string) => void } = {}) {
    this.#onEndpointsChange = opts.onEndpointsChange ?? (() => {});
  }

  /** Registers (or re-registers, after a reconnect) a sidecar. */
  register(reg: SidecarRegistration, cert: { serial: string; notAfter: number }, nowMs: number): SidecarEntry {
    const previous = this.#entries.get(reg.id);
    const entry: SidecarEntry = { ...reg, generation: ++this.#generation, connectedAt: nowMs, lastSeen: nowMs, certSerial: cert.serial, certNotAfter: cert.notAfter, sentVersion: null, firstSentVersion: null, ackedVersion: previous?.ackedVersion ?? null, nack: null };
    this.#entries.set(reg.id, entry);
    if (previous && keyOf(previous) !== keyOf(reg)) this.#onEndpointsChange(keyOf(previous));
    this.#onEndpointsChange(keyOf(reg));
    return entry;
  }

  remove(id: string, generation?: number): boolean {
    const entry = this.#entries.get(id);
    // A stale stream closing after the sidecar already reconnected must not remove the new registration.
    if (!entry || (generation !== undefined && entry.generation !== generation)) return false;
    this.#entries.delete(id);
    this.#onEndpointsChange(keyOf(entry));
    return true;
  }

  get(id: string): SidecarEntry | undefined {
    return this.#entries.get(id);
  }

  seen(id: string, nowMs: number): boolean {
    const entry = this.#entries.get(id);
    if (entry) entry.lastSeen = nowMs;
    return !!entry;
  }

  /** Removes sidecars silent for longer than `maxSilenceMs`; returns their IDs. */
  sweep(nowMs: number, maxSilenceMs: number): string[] {
    const gone = [...this.#entries.values()].filter((e) => nowMs - e.lastSeen > maxSilenceMs).map((e) => e.id);
    for (const id of gone) this.remove(id);
    return gone;
  }

  list(): SidecarEntry[] {
    return [...this.#entries.values()].sort((a, b) => keyOf(a).localeCompare(keyOf(b)) || a.id.localeCompare(b.id));
  }

  endpoints(service: string, namespace: string): Endpoint[] {
    const out: Endpoint[] = [];
    for (const e of this.#entries.values()) {
      if (e.service === service && e.namespace === namespace) out.push({ address: e.address, labels: e.labels });
    }
    return out.sort((a, b) => a.address.localeCompare(b.address));
  }
}

export function keyOf(x: { service: string; namespace: string }): string {
  return `${x.service}.${x.namespace}`;
}

/** ACK state as weft status shows it: SYNCED once the last snapshot sent is ACKed, NACK if it was refused. */
export function ackState(e: SidecarEntry): 'SYNCED' | 'STALE' | 'NACK' {
  if (e.nack && e.nack.version >= (e.ackedVersion ?? 0)) return 'NACK';
  return e.sentVersion !== null && e.sentVersion === e.ackedVersion ? 'SYNCED' : 'STALE';
}

/** One sidecar as the operator API reports it. */
export function describeSidecar(e: SidecarEntry): Record<string, unknown> {
  return {
    id: e.id,
    identity: e.identity,
    service: keyOf(e),
    labels: e.labels,
    address: e.address,
    admin: e.admin,
    sentVersion: e.sentVersion,
    ackedVersion: e.ackedVersion,
    ack: ackState(e),
    nackError: e.nack?.error ?? null,
    certSerial: e.certSerial,
    certExpiry: new Date(e.certNotAfter).toISOString(),
    lastSeen: new Date(e.lastSeen).toISOString(),
  };
}
