// The sidecar's identity: a first certificate for the bootstrap token, then renewal over mTLS at half-life.
//
// Every renewal makes a new key in memory. A failed renewal retries with backoff and is reported on the admin
// port long before expiry; the current certificate stays in use until the new one arrives, so listeners
// swap contexts without dropping a connection (see the 'rotated' event).

import { EventEmitter } from 'node:events';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isWeftError, WeftError } from '../../errors.ts';
import { ControlPlaneClient } from '../../control-plane/client.ts';
import { csrPem, newWorkloadKey } from './csr.ts';

export interface Svid {
  readonly identity: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** leaf then intermediates */
  readonly chainPem: string;
  readonly keyPem: string;
  /** the roots as of issuance; snapshots bring later changes */
  readonly bundlePem: string;
}

export interface RenewalStatus {
  readonly failures: number;
  readonly lastError: string | null;
  readonly nextAttempt: Date | null;
}

export interface SvidSourceOptions {
  readonly controlPlane: { readonly url: string; readonly ca: string; readonly serverIdentity: string };
  readonly token: string;
  /** renew this often instead of at half-life: rotation drills and tests (the CA's minimum lifetime is 5 minutes) */
  readonly renewEveryMs?: number;
  readonly clock?: () => number;
  readonly log: (event: Record<string, unknown>) => void;
}

interface IssueAnswer {
  identity: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  chain: string;
  bundle: string;
}

/** When to renew: half-way through the lifetime, plus up to 10% of it as jitter so a fleet spreads out. */
export function renewalTime(notBefore: Date, notAfter: Date, random: number = Math.random()): Date {
  const life = notAfter.getTime() - notBefore.getTime();
  return new Date(notBefore.getTime() + life / 2 + life * 0.1 * random);
}

/** Exponential backoff from 1 s up to 30 s. */
export function backoffMs(failures: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, failures - 1));
}

/**
 * The backoff, or the control plane's Retry-After if that is longer (ControlPlaneClient reads it into details),
 * up to 5 minutes: no answer should keep a sidecar from trying again well before its certificate expires.
 */
export function retryDelayMs(failures: number, err: unknown): number {
  const retryAfter = isWeftError(err) ? err.details['retryAfterSeconds'] : undefined;
  return Math.max(backoffMs(failures), typeof retryAfter === 'number' ? Math.min(retryAfter, 300) * 1000 : 0);
}

export class SvidSource extends EventEmitter<{ rotated: [Svid] }> {
  readonly #o: SvidSourceOptions;
  readonly #clock: () => number;
  #svid: Svid | null = null;
  #timer: NodeJS.Timeout | null = null;
  #status: RenewalStatus = { failures: 0, lastError: null, nextAttempt: null };

  constructor(opts: SvidSourceOptions) {
    super();
    this.#o = opts;
    this.#clock = opts.clock ?? Date.now;
  }

  get current(): Svid {
    if (!this.#svid) throw new WeftError('WEFT_AUTH_REQUIRED', 'no workload certificate yet');
    return this.#svid;
  }

  get ready(): boolean {
    return this.#svid !== null && this.#svid.notAfter.getTime() > this.#clock();
  }

  get renewal(): RenewalStatus {
    return this.#status;
  }

  /** Redeems the bootstrap token. Retries with backoff on network errors and 429s; a refused token is final. */
  async bootstrap(): Promise<Svid> {
    for (let attempt = 1; ; attempt++) {
      const key = newWorkloadKey();
      const client = new ControlPlaneClient(this.#o.controlPlane);
      try {
        const answer = await client.request<IssueAnswer>('POST', '/v1/identity/bootstrap', { token: this.#o.token, csr: csrPem(key.privateKey) });
        return this.#install(answer, key.privateKeyPem);
      } catch (err) {
        // Retried: the control plane out of reach, or asking this address to wait (others there presented bad
        // tokens). A refused token is final.
        if (!(err instanceof WeftError) || (err.code !== 'WEFT_CP_UNREACHABLE' && err.code !== 'WEFT_API_RATE_LIMITED')) throw err;
        const wait = retryDelayMs(attempt, err);
        this.#status = { failures: attempt, lastError: err.message, nextAttempt: new Date(this.#clock() + wait) };
        this.#o.log({ msg: err.code === 'WEFT_CP_UNREACHABLE' ? 'control plane unreachable for bootstrap; retrying' : 'control plane asks this address to wait; retrying', inMs: wait, error: err.message });
        await new Promise((r) => setTimeout(r, wait));
      } finally {
        client.close();
      }
    }
  }

  /** Renews now over mTLS with the current certificate; on failure schedules a retry with backoff. */
  async renew(): Promise<void> {
    const current = this.current;
    const key = newWorkloadKey();
    const client = new ControlPlaneClient({ ...this.#o.controlPlane, cert: current.chainPem, key: current.keyPem });
    try {
      const answer = await client.request<IssueAnswer>('POST', '/v1/identity/renew', { csr: csrPem(key.privateKey) });
      this.#install(answer, key.privateKeyPem);
      this.#o.log({ msg: 'certificate renewed', identity: answer.identity, serial: answer.serial, notAfter: answer.notAfter });
    } catch (err) {
      // Whatever the failure, the current certificate stays in use and the renewal is tried again; a 429 (this
      // certificate or this address renewing too often) is waited out for at least its Retry-After.
      const failures = this.#status.failures + 1;
      const wait = retryDelayMs(failures, err);
      const limited = isWeftError(err, 'WEFT_API_RATE_LIMITED');
      this.#status = { failures, lastError: (err as Error).message, nextAttempt: new Date(this.#clock() + wait) };
      this.#o.log({ msg: limited ? 'certificate renewal told to wait; retrying' : 'certificate renewal failed; retrying', failures, inMs: wait, expires: current.notAfter.toISOString(), error: (err as Error).message });
      this.#schedule(wait);
    } finally {
      client.close();
    }
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #install(answer: IssueAnswer, keyPem: string): Svid {
    const leaf = new X509Certificate(answer.chain);
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) {
      throw new WeftError('WEFT_CA_KEY_MISMATCH', 'the control plane returned a certificate for a different key');
    }
    const svid: Svid = {
      identity: answer.identity,
      serial: answer.serial,
      notBefore: new Date(answer.notBefore),
      notAfter: new Date(answer.notAfter),
      chainPem: answer.chain,
      keyPem,
      bundlePem: answer.bundle,
    };
    this.#svid = svid;
    const next = this.#o.renewEveryMs ? new Date(this.#clock() + this.#o.renewEveryMs) : renewalTime(svid.notBefore, svid.notAfter);
    this.#status = { failures: 0, lastError: null, nextAttempt: next };
    this.#schedule(this.#status.nextAttempt!.getTime() - this.#clock());
    this.emit('rotated', svid);
    return svid;
  }

  #schedule(delayMs: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.renew(), Math.max(0, delayMs));
    this.#timer.unref();
  }
}
