// The sidecar's link to the control plane: one mTLS stream of snapshots, ACKed or NACKed up the same stream, kept
// alive and reconnected with backoff. When the control plane is gone the sidecar keeps serving its last good config.

import { randomBytes } from 'node:crypto';
import { WeftError } from '../../errors.ts';
import { ControlPlaneClient, type SnapshotStream } from '../../control-plane/client.ts';
import { bodyOf, merge, unknownKinds, type SnapshotDelta } from '../../control-plane/snapshot/resources.ts';
import type { SnapshotBody } from '../../control-plane/snapshot/types.ts';
import { backoffMs, type SvidSource } from '../identity/svid-source.ts';

export interface Registration {
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** host:port peers dial for this sidecar's inbound */
  readonly address: string;
  /** host:port of its admin port (/ready, /metrics), for `weft status` and `weft top` */
  readonly admin?: string;
}

export interface AgentOptions {
  readonly controlPlane: { readonly url: string; readonly ca: string; readonly serverIdentity: string };
  readonly svid: SvidSource;
  readonly registration: Registration;
  /** applies a snapshot; throwing NACKs it and keeps the last good config */
  readonly apply: (version: number, body: SnapshotBody) => void;
  /** a new version with nothing new in it (another service's change): the config in force now carries it */
  readonly retag: (version: number) => void;
  readonly log: (event: Record<string, unknown>) => void;
  readonly heartbeatMs?: number;
}

export interface AgentStatus {
  readonly connected: boolean;
  readonly appliedVersion: number | null;
  readonly lastNack: { version: number; error: string } | null;
  readonly reconnects: number;
}

/** One connection to the control plane: its client, its stream, and the resources received on it. */
interface Link {
  readonly client: ControlPlaneClient;
  stream: SnapshotStream | null;
  resources: Map<string, unknown> | null;
  /** the resources received on this link are the config in force (the last snapshot was applied, not NACKed) */
  inForce: boolean;
  /** ACKs of snapshots that arrived before #open() had the stream in hand, sent once it has */
  readonly early: Record<string, unknown>[];
  /** the last version this stream delivered: on one stream versions only grow */
  version: number | null;
}

/** Refusals of the stream that no retry changes: this certificate may not register so, or is revoked. */
const FINAL = new Set<string>(['WEFT_AUTH_FORBIDDEN', 'WEFT_API_BAD_REQUEST', 'WEFT_CERT_REVOKED']);

function refusal(err: WeftError, reg: AgentOptions['registration']): WeftError {
  const hint = err.code === 'WEFT_AUTH_FORBIDDEN' ? `; a bootstrap token gives the identity of the service it was issued for: issue one for this one (weft token --service ${reg.service} --namespace ${reg.namespace})` : '';
  return new WeftError(err.code, `the control plane refused this sidecar (${reg.service}.${reg.namespace}): ${err.message}${hint}`, { ...err.details }, { cause: err });
}

export class ControlPlaneAgent {
  readonly id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  readonly #o: AgentOptions;
  #link: Link | null = null;
  #stopped = false;
  #failures = 0;
  #heartbeat: NodeJS.Timeout | null = null;
  #status: { connected: boolean; appliedVersion: number | null; lastNack: { version: number; error: string } | null; reconnects: number } = { connected: false, appliedVersion: null, lastNack: null, reconnects: 0 };
  #firstApplied!: () => void;
  #firstFailed!: (err: Error) => void;
  /** resolves once a first snapshot has been applied; rejects if the control plane refuses the sidecar for good first */
  readonly firstConfig = new Promise<void>((resolve, reject) => ((this.#firstApplied = resolve), (this.#firstFailed = reject)));

  constructor(opts: AgentOptions) {
    this.#o = opts;
  }

  get status(): AgentStatus {
    return { ...this.#status };
  }

  start(): void {
    void this.#loop();
    // Up the stream, as its ACKs go: the control plane removes a sidecar it has not heard from for 15 s.
    this.#heartbeat = setInterval(() => void this.#link?.stream?.send({ type: 'heartbeat', id: this.id }), this.#o.heartbeatMs ?? 5000);
    this.#heartbeat.unref();
    this.#o.svid.on('rotated', () => void this.#replace());
  }

  stop(): void {
    this.#stopped = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#close(this.#link);
  }

  /** Opens a connection under the current certificate; a new stream starts with a full snapshot. */
  async #open(): Promise<Link> {
    const svid = this.#o.svid.current;
    const link: Link = { client: new ControlPlaneClient({ ...this.#o.controlPlane, cert: svid.chainPem, key: svid.keyPem }), stream: null, resources: null, inForce: false, early: [], version: null };
    try {
      link.stream = await link.client.stream('/v1/sidecars/stream', { id: this.id, ...this.#o.registration }, (m) => {
        if (m.event === 'snapshot') {
          // A stream that delivers ends the backoff; one that only opens does not (a control plane that drops
          // every stream at once would otherwise be retried every second by every sidecar).
          this.#failures = 0;
          this.#onSnapshot(link, m.data);
        }
        // It refused a line this sidecar sent, and ends the stream: a bug to report, the reconnect recovers.
        else if (m.event === 'error') this.#o.log({ msg: 'the control plane refused a report on the stream and is closing it', error: m.data });
      });
      for (const line of link.early.splice(0)) link.stream.send(line);
      return link;
    } catch (err) {
      link.client.close();
      throw err;
    }
  }

  #close(link: Link | null): void {
    link?.stream?.close();
    link?.client.close();
  }

  /**
   * A new certificate: make the new connection before breaking the old one. The control plane sees the same
   * sidecar ID re-register, so its endpoint never leaves the mesh during a rotation.
   */
  async #replace(): Promise<void> {
    if (this.#stopped || !this.#link) return;
    try {
      const next = await this.#open();
      const old = this.#link;
      this.#link = next;
      this.#close(old);
    } catch (err) {
      this.#o.log({ msg: 'could not reconnect with the new certificate; keeping the current stream', error: (err as Error).message });
    }
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (!this.#link) this.#link = await this.#open();
        this.#status.connected = true;
        const link = this.#link;
        const why = await link.stream!.closed;
        if (why) this.#o.log({ msg: 'control plane stream closed by this side', reason: why });
        // Replaced by a rotation: the new link is already streaming.
        if (this.#link !== link) continue;
        this.#link = null;
        this.#close(link);
      } catch (err) {
        if (this.#status.appliedVersion === null && err instanceof WeftError && FINAL.has(err.code)) {
          // Before any config: nothing to serve, and retrying cannot change the answer.
          this.#stopped = true;
          this.#firstFailed(refusal(err, this.#o.registration));
          return;
        }
        this.#o.log({ msg: 'control plane stream failed', error: (err as Error).message });
      }
      this.#status.connected = false;
      if (this.#stopped) return;
      this.#failures++;
      this.#status.reconnects++;
      const wait = Math.round(backoffMs(this.#failures) * (0.5 + Math.random() / 2));
      if (this.#status.appliedVersion === null) this.#o.log({ msg: 'control plane stream closed before a first config; reconnecting', inMs: wait });
      else this.#o.log({ msg: 'control plane stream closed; serving the last good config and reconnecting', inMs: wait });
      await new Promise((r) => setTimeout(r, wait).unref());
    }
  }

  #onSnapshot(link: Link, data: string): void {
    let version = -1;
    try {
      const delta = JSON.parse(data) as SnapshotDelta;
      if (!Number.isSafeInteger(delta.version)) throw new Error(`snapshot version ${JSON.stringify(delta.version)} is not a whole number`);
      version = delta.version;
      // On one stream versions only grow: an older one is out of order (a control plane's bug). A new stream may
      // start lower: a control plane restarted with its clock behind (versions start from its clock) is taken.
      if (link.version !== null && version < link.version) throw new Error(`snapshot ${version} is older than ${link.version}, which this stream delivered before: out of order`);
      const applied = this.#status.appliedVersion;
      if (link.version === null && applied !== null && version < applied) this.#o.log({ msg: 'the control plane restarted with versions older than the one applied (its clock is behind?); taking its snapshot', version, applied });
      // Nothing new, and what this link sent before is in force (not NACKed): only the version moves on.
      if (!delta.full && link.inForce && Object.keys(delta.resources).length === 0 && delta.removed.length === 0) {
        this.#o.retag(version);
        this.#status.appliedVersion = link.version = version;
        this.#ack(link, { id: this.id, version, ok: true });
        return;
      }
      // What the control plane sent on this stream is what it believes this sidecar holds, applied or not.
      link.resources = merge(link.resources, delta);
      link.inForce = false;
      const unknown = unknownKinds(link.resources);
      if (unknown.length) this.#o.log({ msg: 'snapshot holds resources of kinds this sidecar does not know (a newer control plane); ignoring them', version, resources: unknown.slice(0, 20) });
      this.#o.apply(version, bodyOf(link.resources, version));
      link.inForce = true;
      // (Only a version applied moves the stream's mark: a NACKed one, a huge bogus number say, must not make every
      // later version look out of order.)
      this.#status.appliedVersion = link.version = version;
      this.#firstApplied();
      this.#ack(link, { id: this.id, version, ok: true });
    } catch (err) {
      const error = (err as Error).message;
      this.#status.lastNack = { version, error };
      this.#o.log({ msg: 'snapshot refused (NACK); keeping the last good config', version, error });
      this.#ack(link, { id: this.id, version, ok: false, error });
    }
  }

  /**
   * Delivers an ACK or NACK up the stream the snapshot came on. Nothing to retry: if that stream has ended, the
   * next one starts with a full snapshot, ACKed in its turn. The reason is cut so that the line stays far
   * below the control plane's limit on a line (16 KiB).
   */
  #ack(link: Link, body: { id: string; version: number; ok: boolean; error?: string }): void {
    const line = { type: 'ack', ...body, ...(body.error === undefined ? {} : { error: body.error.slice(0, 2000) }) };
    if (link.stream) link.stream.send(line);
    else link.early.push(line);
  }
}
