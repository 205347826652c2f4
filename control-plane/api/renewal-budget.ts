// How often a certificate may be renewed, and how many renewals one address may ask for. Each renewal is a CA
// signature (~290 µs of the control plane's CPU) and yields a new certificate that can renew in turn, so without
// a limit one compromised or looping workload could keep the CA signing for everyone.
//
// Per certificate (serial): burst 5, then one every 30 s. A healthy sidecar renews each certificate once, at
// half its life plus jitter (--renew-every drills too: once per certificate); it asks again with the same one
// only when a try failed (an answer lost, the CA unable to sign), on its backoff of 1, 2, 4, 8, 16, then 30 s.
// The first five tries fit the burst and the 30 s steps after them match the refill, so a sidecar retrying on its
// own never meets this limit. Replicas of a service share a SPIFFE ID but each has its own certificates, so the
// key is the serial, never the identity: one replica hammering does not hold back another.
//
// Per address: burst 200, then 20 a second. Sidecars on one host share an address (all of `weft up` is on
// loopback; so is a node behind NAT). Certificates issued together (a fleet restarted at once) renew within
// the jitter window, 10% of their life: 30 s at the shortest lifetime (5 min), where 200 + 20 x 30 = 800
// sidecars per address still fit; a rotation drill renewing every second fits 20 sidecars per address. The
// chain a hostile address can grow (each new certificate bringing 5 more tries) is capped at 20 signatures a
// second, ~0.6% of one core. Only renewals both buckets allow are counted: a certificate told to wait draws
// nothing from its address, so its neighbours renew as usual.

import { TokenBuckets, type TokenBucketRate } from './token-buckets.ts';

export const PER_CERTIFICATE: TokenBucketRate = { burst: 5, perSecond: 1 / 30 };
export const PER_ADDRESS: TokenBucketRate = { burst: 200, perSecond: 20 };

/** Why a renewal must wait, and for how long (the Retry-After header). */
export interface RenewalRefusal {
  readonly retryAfterSeconds: number;
  readonly message: string;
}

export class RenewalBudget {
  readonly #serials: TokenBuckets;
  readonly #addresses: TokenBuckets;

  constructor(clock: () => number = Date.now) {
    this.#serials = new TokenBuckets(PER_CERTIFICATE, clock);
    this.#addresses = new TokenBuckets(PER_ADDRESS, clock);
  }

  /** Counts a renewal of certificate `serial` (for `identity`) asked from `address`, or says why it must wait. */
  take(peer: { readonly serial: string; readonly identity: string }, address: string): RenewalRefusal | null {
    if (!this.#serials.allows(peer.serial)) {
      const wait = this.#serials.retryAfterSeconds(peer.serial);
      return {
        retryAfterSeconds: wait,
        message: `certificate ${peer.serial} for ${peer.identity} has asked for renewal too often (${PER_CERTIFICATE.burst} at once, then one every ${1 / PER_CERTIFICATE.perSecond} s); try again in ${wait} s`,
      };
    }
    if (!this.#addresses.allows(address)) {
      const wait = this.#addresses.retryAfterSeconds(address);
      return {
        retryAfterSeconds: wait,
        message: `too many certificate renewals from ${address} (${PER_ADDRESS.burst} at once, then ${PER_ADDRESS.perSecond} a second); try again in ${wait} s`,
      };
    }
    this.#serials.spend(peer.serial);
    this.#addresses.spend(address);
    return null;
  }
}
