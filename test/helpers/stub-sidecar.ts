// A stub sidecar for control-plane tests and the push benchmark: bootstraps, streams snapshots, ACKs or NACKs.
// It reports as an older sidecar does (ACKs and heartbeats as calls, the stream half duplex) unless told to report
// up the stream as the real one does (`reports: 'stream'`).

import { randomBytes } from 'node:crypto';
import { ControlPlaneClient, type SnapshotStream } from '../../control-plane/client.ts';
import type { Snapshot } from '../../control-plane/snapshot/types.ts';
import { assemble, type SnapshotDelta } from '../../control-plane/snapshot/resources.ts';
import { generateKeyPair, privateKeyToPem, type KeyPair } from '../../ca/keys.ts';
import { EC_P256, x509 } from '../../ca/x509.ts';

export interface StubOptions {
  readonly url: string;
  readonly ca: string;
  readonly serverIdentity: string;
  readonly service: string;
  readonly namespace?: string;
  readonly labels?: Record<string, string>;
  readonly address?: string;
  /** decide per snapshot: true ACKs, a string NACKs with that reason */
  readonly verdict?: (s: Snapshot) => true | string;
  /** 'calls' (default): POST /v1/sidecars/ack and /heartbeat; 'stream': lines up a full-duplex stream */
  readonly reports?: 'calls' | 'stream';
}

export interface Svid {
  readonly chain: string;
  readonly key: string;
  readonly identity: string;
  readonly serial: string;
  readonly notAfter: string;
}

export async function csrFor(keys: KeyPair): Promise<string> {
  return (await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: EC_P256 })).toString('pem');
}

/** Redeems a bootstrap token over TLS (no client certificate yet). */
export async function bootstrap(o: { url: string; ca: string; serverIdentity: string }, token: string, keys: KeyPair = generateKeyPair()): Promise<Svid> {
  const client = new ControlPlaneClient({ url: o.url, ca: o.ca, serverIdentity: o.serverIdentity });
  try {
    const r = await client.request<{ chain: string; identity: string; serial: string; notAfter: string }>('POST', '/v1/identity/bootstrap', { token, csr: await csrFor(keys) });
    return { chain: r.chain, key: privateKeyToPem(keys.privateKey), identity: r.identity, serial: r.serial, notAfter: r.notAfter };
  } finally {
    client.close();
  }
}

export class StubSidecar {
  readonly id = `stub-${randomBytes(4).toString('hex')}`;
  readonly snapshots: Snapshot[] = [];
  readonly client: ControlPlaneClient;
  readonly #o: StubOptions;
  #waiters: { pred: (s: Snapshot) => boolean; resolve: (s: Snapshot) => void }[] = [];
  #stream: SnapshotStream | null = null;
  /** SSE events other than snapshots (`registered`, `error`) */
  readonly events: { event: string; data: string }[] = [];
  #resources: Map<string, unknown> | null = null;
  bytesReceived = 0;

  constructor(o: StubOptions, svid: Svid) {
    this.#o = o;
    this.client = new ControlPlaneClient({ url: o.url, ca: o.ca, serverIdentity: o.serverIdentity, cert: svid.chain, key: svid.key });
  }

  get latest(): Snapshot | undefined {
    return this.snapshots.at(-1);
  }

  get closed(): Promise<string | undefined> | undefined {
    return this.#stream?.closed;
  }

  async connect(): Promise<void> {
    const viaStream = this.#o.reports === 'stream';
    const early: Record<string, unknown>[] = [];
    const report = (line: Record<string, unknown>) => (this.#stream ? this.#stream.send(line) : early.push(line));
    this.#stream = await this.client.stream('/v1/sidecars/stream', {
      id: this.id,
      service: this.#o.service,
      namespace: this.#o.namespace ?? 'default',
      labels: this.#o.labels ?? {},
      address: this.#o.address ?? '127.0.0.1:1',
    }, (m) => {
      if (m.event !== 'snapshot') return void this.events.push({ event: m.event, data: m.data });
      const delta = JSON.parse(m.data) as SnapshotDelta;
      this.bytesReceived += m.data.length;
      const assembled = assemble(this.#resources, delta);
      this.#resources = assembled.resources;
      const s: Snapshot = { version: delta.version, body: assembled.body };
      this.snapshots.push(s);
      const verdict = this.#o.verdict?.(s) ?? true;
      const ack = { id: this.id, version: s.version, ok: verdict === true, error: verdict === true ? undefined : verdict };
      if (viaStream) report({ type: 'ack', ...ack });
      else void this.client.request('POST', '/v1/sidecars/ack', ack).catch(() => {});
      this.#waiters = this.#waiters.filter((w) => (w.pred(s) ? (w.resolve(s), false) : true));
    }, { duplex: viaStream });
    for (const line of early) this.#stream.send(line);
  }

  /** Writes a raw line up a full-duplex stream (for tests of what the control plane does with bad ones). */
  sendRaw(line: Record<string, unknown>): boolean {
    return this.#stream?.send(line) ?? false;
  }

  /** Resolves with the first snapshot (already received or coming) that satisfies `pred`. */
  waitFor(pred: (s: Snapshot) => boolean, timeoutMs = 10_000): Promise<Snapshot> {
    const have = this.snapshots.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.id}: no matching snapshot within ${timeoutMs} ms`)), timeoutMs);
      this.#waiters.push({ pred, resolve: (s) => (clearTimeout(t), resolve(s)) });
    });
  }

  async heartbeat(): Promise<void> {
    if (this.#o.reports === 'stream') this.#stream?.send({ type: 'heartbeat', id: this.id });
    else await this.client.request('POST', '/v1/sidecars/heartbeat', { id: this.id });
  }

  close(): void {
    this.#stream?.close();
    this.client.close();
  }
}
