// The sidecar's link to the control plane: one mTLS stream of snapshots, ACKed or NACKed, kept alive and
// reconnected with backoff. When the control plane is gone the sidecar keeps serving its last good config.

import { randomBytes } from 'node:crypto';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { assemble, type SnapshotDelta } from '../../control-plane/snapshot/resources.ts';
import type { SnapshotBody } from '../../control-plane/snapshot/types.ts';
import { backoffMs, type SvidSource } from '../identity/svid-source.ts';

export interface Registration {
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** host:port peers dial for this sidecar's inbound */
  readonly address: string;
}

export interface AgentOptions {
  readonly controlPlane: { readonly url: string; readonly ca: string; readonly serverIdentity: string };
  readonly svid: SvidSource;
  readonly registration: Registration;
  /** applies a snapshot; throwing NACKs it and keeps the last good config */
  readonly apply: (version: number, body: SnapshotBody) => void;
  readonly log: (event: Record<string, unknown>) => void;
  readonly heartbeatMs?: number;
}

export interface AgentStatus {
  readonly connected: boolean;
  readonly appliedVersion: number | null;
  readonly lastNack: { version: number; error: string } | null;
  readonly reconnects: number;
}

export class ControlPlaneAgent {
  readonly id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  readonly #o: AgentOptions;
  #client: ControlPlaneClient | null = null;
  #stream: { close(): void; closed: Promise<void> } | null = null;
  #resources: Map<string, unknown> | null = null;
  #stopped = false;
  #failures = 0;
  #heartbeat: NodeJS.Timeout | null = null;
  #status: { connected: boolean; appliedVersion: number | null; lastNack: { version: number; error: string } | null; reconnects: number } = { connected: false, appliedVersion: null, lastNack: null, reconnects: 0 };
  #firstApplied!: () => void;
  /** resolves once a first snapshot has been applied */
  readonly firstConfig = new Promise<void>((resolve) => (this.#firstApplied = resolve));

  constructor(opts: AgentOptions) {
    this.#o = opts;
  }

  get status(): AgentStatus {
    return { ...this.#status };
  }

  start(): void {
    void this.#loop();
    this.#heartbeat = setInterval(() => {
      void this.#client?.request('POST', '/v1/sidecars/heartbeat', { id: this.id }).catch(() => {});
    }, this.#o.heartbeatMs ?? 5000);
    this.#heartbeat.unref();
    // A new certificate means a new connection: the stream is re-established under the new identity proof.
    this.#o.svid.on('rotated', () => this.#stream?.close());
  }

  stop(): void {
    this.#stopped = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#stream?.close();
    this.#client?.close();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const svid = this.#o.svid.current;
      this.#client?.close();
      this.#client = new ControlPlaneClient({ ...this.#o.controlPlane, cert: svid.chainPem, key: svid.keyPem });
      // A new stream starts with a full snapshot.
      this.#resources = null;
      try {
        this.#stream = await this.#client.stream('/v1/sidecars/stream', { id: this.id, ...this.#o.registration }, (m) => {
          if (m.event === 'snapshot') this.#onSnapshot(m.data);
        });
        this.#status.connected = true;
        this.#failures = 0;
        await this.#stream.closed;
      } catch (err) {
        this.#o.log({ msg: 'control plane stream failed', error: (err as Error).message });
      }
      this.#status.connected = false;
      if (this.#stopped) return;
      this.#failures++;
      this.#status.reconnects++;
      const wait = Math.round(backoffMs(this.#failures) * (0.5 + Math.random() / 2));
      this.#o.log({ msg: 'control plane stream closed; serving the last good config and reconnecting', inMs: wait });
      await new Promise((r) => setTimeout(r, wait).unref());
    }
  }

  #onSnapshot(data: string): void {
    let version = -1;
    try {
      const delta = JSON.parse(data) as SnapshotDelta;
      version = delta.version;
      // What the control plane sent is what it believes this sidecar holds, applied or not.
      const { resources, body } = assemble(this.#resources, delta);
      this.#resources = resources;
      this.#o.apply(version, body);
      this.#status.appliedVersion = version;
      this.#firstApplied();
      void this.#client?.request('POST', '/v1/sidecars/ack', { id: this.id, version, ok: true }).catch(() => {});
    } catch (err) {
      const error = (err as Error).message;
      this.#status.lastNack = { version, error };
      this.#o.log({ msg: 'snapshot refused (NACK); keeping the last good config', version, error });
      void this.#client?.request('POST', '/v1/sidecars/ack', { id: this.id, version, ok: false, error }).catch(() => {});
    }
  }
}
