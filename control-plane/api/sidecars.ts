// The sidecar API: register and receive snapshots on one long-lived stream, ACK or NACK them, heartbeat: on the
// stream's own connection (a full-duplex stream, ./stream-lines.ts) or, from older sidecars, as calls.

import { WeftError, type ErrorCode } from '../../errors.ts';
import { keyOf, type Registry, type SidecarEntry, type SidecarRegistration } from '../registry.ts';
import type { SnapshotPusher } from '../push/pusher.ts';
import { PacedWriter } from '../push/paced-writer.ts';
import { sseEvent, SSE_KEEPALIVE } from '../push/sse.ts';
import { requireCurrent, requireWorkload, type AuthContext, type PeerIdentity } from './authenticate.ts';
import { BODY_DEADLINE_MS, field, readJson, sendJson, type Request, type Response } from './http.ts';
import { isDuplex, LINE_RATE, parseStreamLine, readStreamLines, type StreamLine } from './stream-lines.ts';
import { TokenBuckets } from './token-buckets.ts';

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;

export interface SidecarApiOptions {
  readonly auth: AuthContext;
  readonly registry: Registry;
  readonly pusher: SnapshotPusher;
  readonly clock: () => number;
  /** the SPIFFE ID a sidecar of this service must present */
  readonly expectedIdentity: (service: string, namespace: string) => string;
  readonly keepaliveMs: number;
  readonly log: (event: Record<string, unknown>) => void;
  readonly observer: SidecarApiObserver;
}

/** What the sidecar API tells metrics (../metrics.ts). */
export interface SidecarApiObserver {
  /** an ACK (ok) or NACK; `converged`: the sidecar's first word on a version pushed to it after its stream began */
  ack(version: number, ok: boolean, converged: boolean): void;
  streamLineRejected(code: ErrorCode | undefined): void;
}

function parseRegistration(body: Record<string, unknown>): SidecarRegistration & { identity: '' } {
  const id = field(body, 'id');
  if (!ID.test(id)) throw new WeftError('WEFT_API_BAD_REQUEST', `"id" ${JSON.stringify(id)} must be 1-64 letters, digits, '.', '_' or '-'`);
  const service = field(body, 'service');
  const namespace = field(body, 'namespace');
  for (const [name, v] of [['service', service], ['namespace', namespace]] as const) {
    if (!DNS_LABEL.test(v)) throw new WeftError('WEFT_API_BAD_REQUEST', `"${name}" ${JSON.stringify(v)} must be a DNS label (lowercase letters, digits, '-')`);
  }
  const address = hostPort(body, 'address');
  const admin = body.admin === undefined ? null : hostPort(body, 'admin');
  const labels = body.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || Object.keys(labels).length > 32) {
    throw new WeftError('WEFT_API_BAD_REQUEST', '"labels" must be an object of at most 32 string values');
  }
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k) || typeof v !== 'string' || v.length > 63) throw new WeftError('WEFT_API_BAD_REQUEST', `label ${JSON.stringify(k)} must be a label name with a string value of at most 63 characters`);
  }
  return { id, service, namespace, address, admin, labels: labels as Record<string, string>, identity: '' };
}

function hostPort(body: Record<string, unknown>, name: string): string {
  const value = field(body, name);
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new WeftError('WEFT_API_BAD_REQUEST', `"${name}" ${JSON.stringify(value)} must be host:port`);
  return value;
}

export class SidecarApi {
  readonly #o: SidecarApiOptions;
  /** open streams by sidecar ID, to end them when a sidecar is swept for missed heartbeats */
  readonly #streams = new Map<string, { end(): void; generation: number }>();
  /** lines per full-duplex stream, by sidecar ID */
  readonly #lineRate: TokenBuckets;

  constructor(opts: SidecarApiOptions) {
    this.#o = opts;
    this.#lineRate = new TokenBuckets(LINE_RATE, opts.clock);
  }

  /**
   * POST /v1/sidecars/stream: registers, then holds the response open and writes snapshots to it. A body of
   * `application/x-ndjson` is full duplex: its first line is the registration, and the sidecar keeps it open to
   * write its ACKs, NACKs and heartbeats, one JSON line each.
   */
  async stream(req: Request, res: Response): Promise<void> {
    const peer = requireWorkload(req, this.#o.auth);
    const lines = isDuplex(req.headers['content-type']) ? readStreamLines(req, BODY_DEADLINE_MS) : null;
    // This HTTP/1.1 connection carries this one request for as long as it lasts: closed with it, refusals too.
    if (lines && req.httpVersionMajor === 1) res.setHeader('connection', 'close');
    let reg: SidecarRegistration, entry: SidecarEntry;
    try {
      reg = parseRegistration(lines ? await lines.first : await readJson<Record<string, unknown>>(req));
      entry = this.#register(peer, reg);
    } catch (err) {
      lines?.stop();
      throw err;
    }
    this.#streams.get(reg.id)?.end();
    // The client takes a stream silent for three keepalives for dead (control-plane/client.ts).
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'weft-keepalive-ms': String(this.#o.keepaliveMs) });
    const out = new PacedWriter(res);
    out.write(sseEvent('registered', JSON.stringify({ id: reg.id, identity: peer.identity })));
    const sub = {
      id: reg.id,
      key: keyOf(reg),
      write: (chunk: string) => out.write(chunk),
      onDrain: (resume: () => void) => out.onIdle(resume),
      sent: (version: number) => {
        entry.firstSentVersion ??= version;
        entry.sentVersion = version;
      },
    };
    // Only when nothing else is on its way: a stream that is sending needs no keepalive, and one whose sidecar
    // has stopped reading must not pile them up.
    const keepalive = setInterval(() => out.idle && out.write(SSE_KEEPALIVE), this.#o.keepaliveMs);
    keepalive.unref();
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      lines?.stop();
      clearInterval(keepalive);
      this.#o.pusher.unsubscribe(reg.id, sub);
      if (this.#streams.get(reg.id)?.generation === entry.generation) this.#streams.delete(reg.id);
      if (this.#o.registry.remove(reg.id, entry.generation)) this.#o.log({ msg: 'sidecar disconnected', id: reg.id, identity: peer.identity });
    };
    this.#streams.set(reg.id, { end: () => (out.end(), close()), generation: entry.generation });
    res.on('close', close);
    this.#o.log({ msg: 'sidecar connected', id: reg.id, identity: peer.identity, service: keyOf(reg), address: reg.address, duplex: lines !== null });
    this.#o.pusher.subscribe(sub);
    // A line that breaks a rule ends the stream, with an `error` event saying which line and why (the sidecar logs
    // it and reconnects); a type of line this control plane does not know is ignored, for newer sidecars.
    let unknownTold = false;
    const refuse = (err: WeftError) => {
      if (closed) return;
      this.#o.observer.streamLineRejected(err.code);
      this.#o.log({ msg: 'sidecar stream line refused; closing the stream', id: reg.id, identity: peer.identity, code: err.code, error: err.message });
      out.write(sseEvent('error', JSON.stringify(err.toJSON())));
      out.end();
      close();
    };
    lines?.listen({
      line: (text, n) => {
        if (closed) return;
        try {
          if (!this.#lineRate.allows(reg.id)) {
            throw new WeftError('WEFT_API_RATE_LIMITED', `stream line ${n} is over the limit of ${LINE_RATE.burst} lines at once and ${LINE_RATE.perSecond} a second`, { line: n });
          }
          this.#lineRate.spend(reg.id);
          const line = parseStreamLine(text, n, reg.id);
          if (line.type === 'unknown' && !unknownTold) {
            unknownTold = true;
            this.#o.log({ msg: 'sidecar stream line of an unknown type ignored (told once per stream)', id: reg.id, type: line.name, line: n });
          }
          this.#report(entry, line);
        } catch (err) {
          refuse(err as WeftError);
        }
      },
      error: refuse,
      end: () => {
        if (!closed) this.#o.log({ msg: 'sidecar ended its stream body; closing the stream', id: reg.id });
        res.end();
        close();
      },
    });
  }

  /** Checks that `peer` may register `reg`, and registers it (again, after a reconnect). */
  #register(peer: PeerIdentity, reg: SidecarRegistration): SidecarEntry {
    // Again, after the registration's body: a certificate revoked meanwhile was not among those disconnectRevoked ended.
    requireCurrent(peer, this.#o.auth);
    const expected = this.#o.expectedIdentity(reg.service, reg.namespace);
    if (peer.identity !== expected) {
      throw new WeftError('WEFT_AUTH_FORBIDDEN', `certificate identity ${peer.identity} may not register as service ${keyOf(reg)}, which runs as ${expected}`, { identity: peer.identity, expected });
    }
    // A sidecar ID is its own: registering with one another identity holds would end that sidecar's stream and
    // take its endpoint out of the mesh.
    const holder = this.#o.registry.get(reg.id);
    if (holder && holder.identity !== peer.identity) {
      throw new WeftError('WEFT_AUTH_FORBIDDEN', `sidecar id ${reg.id} is registered by ${holder.identity}; a sidecar may only replace its own registration`, { id: reg.id });
    }
    // One certificate, one sidecar: a second registration under another id would add a made-up endpoint to the
    // service, pushed to every sidecar (a review registered 1000 with one certificate).
    const sibling = this.#o.registry.list().find((e) => e.certSerial === peer.serial && e.id !== reg.id);
    if (sibling) {
      throw new WeftError('WEFT_AUTH_FORBIDDEN', `certificate ${peer.serial} already registered sidecar ${sibling.id}; a certificate registers one sidecar (each sidecar bootstraps its own)`, { id: sibling.id });
    }
    const now = this.#o.clock();
    return this.#o.registry.register({ ...reg, identity: peer.identity }, { serial: peer.serial, notAfter: peer.notAfter }, now);
  }

  /** POST /v1/sidecars/ack {id, version, ok, error}: the sidecar applied (or refused) a snapshot. */
  async ack(req: Request, res: Response): Promise<void> {
    const peer = requireWorkload(req, this.#o.auth);
    const body = await readJson<Record<string, unknown>>(req);
    const entry = this.#own(peer, field(body, 'id'));
    const version = body.version;
    if (typeof version !== 'number' || !Number.isSafeInteger(version)) throw new WeftError('WEFT_API_BAD_REQUEST', '"version" must be an integer');
    this.#report(entry, { type: 'ack', version, ok: body.ok === true, ...(typeof body.error === 'string' ? { error: body.error.slice(0, 2000) } : {}) });
    sendJson(res, 200, { ok: true });
  }

  /** An ACK, NACK or heartbeat, by call or stream line: the sidecar is alive, and holds (or refused) a version. */
  #report(entry: SidecarEntry, line: StreamLine): void {
    entry.lastSeen = this.#o.clock();
    if (line.type !== 'ack') return;
    // ACKs can arrive out of order (an older sidecar sends them on whichever of its connections is free): a late
    // ACK or NACK of an older version never moves the sidecar's state backwards.
    const { version } = line;
    const newer = entry.ackedVersion === null || version > entry.ackedVersion;
    this.#o.observer.ack(version, line.ok, newer && version > (entry.firstSentVersion ?? Infinity));
    if (newer && line.ok) {
      entry.ackedVersion = version;
      if (entry.nack && entry.nack.version <= version) entry.nack = null;
    } else if (newer) {
      entry.nack = { version, error: line.error ?? 'no reason given' };
      this.#o.log({ msg: 'sidecar refused a snapshot (NACK)', id: entry.id, version, error: entry.nack.error });
    }
  }

  /** POST /v1/sidecars/heartbeat {id} */
  async heartbeat(req: Request, res: Response): Promise<void> {
    const peer = requireWorkload(req, this.#o.auth);
    const body = await readJson<Record<string, unknown>>(req);
    this.#report(this.#own(peer, field(body, 'id')), { type: 'heartbeat' });
    sendJson(res, 200, { ok: true });
  }

  /**
   * Ends the streams of sidecars that missed their heartbeats, or whose certificate has expired (a sidecar that
   * renewed reconnects with its new one); the registry drops their endpoints.
   */
  sweep(maxSilenceMs: number): void {
    const now = this.#o.clock();
    for (const entry of this.#o.registry.list()) {
      const expired = now >= entry.certNotAfter;
      if (now - entry.lastSeen <= maxSilenceMs && !expired) continue;
      if (expired) this.#o.log({ msg: 'sidecar certificate expired; removing it', id: entry.id, serial: entry.certSerial });
      else this.#o.log({ msg: 'sidecar missed heartbeats; removing it', id: entry.id, silentMs: now - entry.lastSeen });
      const stream = this.#streams.get(entry.id);
      if (stream) stream.end();
      else this.#o.registry.remove(entry.id);
    }
  }

  /** Ends the streams of sidecars whose certificate was just revoked; they must come back with a new one. */
  disconnectRevoked(isRevoked: (serial: string) => boolean): void {
    for (const entry of this.#o.registry.list()) {
      if (!isRevoked(entry.certSerial)) continue;
      this.#o.log({ msg: 'sidecar certificate revoked; closing its stream', id: entry.id, serial: entry.certSerial });
      this.#streams.get(entry.id)?.end();
    }
  }

  closeAll(): void {
    for (const s of [...this.#streams.values()]) s.end();
  }

  #own(peer: PeerIdentity, id: string) {
    const entry = this.#o.registry.get(id);
    if (!entry) throw new WeftError('WEFT_API_NOT_FOUND', `no sidecar ${JSON.stringify(id)} is registered; open the stream first`, { id });
    if (entry.identity !== peer.identity) throw new WeftError('WEFT_AUTH_FORBIDDEN', `sidecar ${id} belongs to ${entry.identity}, not ${peer.identity}`);
    return entry;
  }
}
