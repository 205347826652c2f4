// Root rotation as pure decisions over the CA's authorities and the clock (SPIRE's slot model, in three steps).
//
//   prepare:  a new root+intermediate is made; its root joins the trust bundle, the old one still signs.
//   activate: the new intermediate signs; the old one is retired but its root stays in the bundle.
//   finish:   once every certificate the old intermediate signed has expired, its root leaves the bundle.
// Between prepare and activate, operators let the new bundle reach every workload (a config push).

import { WeftError } from '../errors.ts';
import { CLOCK_SKEW_BACKDATE_S, MAX_WORKLOAD_TTL_S } from './lifetime.ts';

export type AuthorityState = 'prepared' | 'active' | 'retired' | 'dropped';

export interface AuthorityRecord {
  readonly id: string;
  readonly state: AuthorityState;
  /** true when the operator supplied the intermediate (plug-in CA) and the root's key is not held here */
  readonly pluggedIn: boolean;
  readonly createdAt: string;
  readonly activatedAt?: string;
  readonly retiredAt?: string;
  readonly droppedAt?: string;
}

export type RotationStep = 'prepare' | 'activate' | 'finish';

function refuse(step: RotationStep, why: string): WeftError {
  return new WeftError('WEFT_CA_ROTATION', `cannot ${step} a rotation: ${why}`, { step });
}

export function activeAuthority(authorities: readonly AuthorityRecord[]): AuthorityRecord {
  const active = authorities.filter((a) => a.state === 'active');
  if (active.length !== 1) throw new WeftError('WEFT_CA_STORE_CORRUPT', `the CA state has ${active.length} active authorities; it must have exactly one`);
  return active[0]!;
}

export function checkCanPrepare(authorities: readonly AuthorityRecord[]): void {
  const pending = authorities.find((a) => a.state === 'prepared' || a.state === 'retired');
  if (pending) {
    throw refuse('prepare', `authority ${pending.id} is still ${pending.state}; ${pending.state === 'prepared' ? "run 'weft ca rotate activate'" : "run 'weft ca rotate finish'"} first`);
  }
}

export function activate(authorities: readonly AuthorityRecord[], nowMs: number): AuthorityRecord[] {
  const next = authorities.find((a) => a.state === 'prepared');
  if (!next) throw refuse('activate', "no prepared authority; run 'weft ca rotate prepare' first");
  const at = new Date(nowMs).toISOString();
  return authorities.map((a) => {
    if (a.state === 'active') return { ...a, state: 'retired', retiredAt: at };
    if (a === next) return { ...a, state: 'active', activatedAt: at };
    return a;
  });
}

/**
 * When the retired root may leave the bundle: once the last certificate its intermediate signed has expired
 * (known from the journal), or, without a journal entry, once the longest possible workload lifetime has
 * passed since retirement. Either way plus the clock-skew allowance peers are given.
 */
export function dropAllowedAt(retired: AuthorityRecord, lastNotAfter: Date | null): Date {
  const retiredAt = Date.parse(retired.retiredAt ?? retired.createdAt);
  const lastExpiry = lastNotAfter ? lastNotAfter.getTime() : retiredAt + MAX_WORKLOAD_TTL_S * 1000;
  return new Date(Math.max(retiredAt, lastExpiry) + CLOCK_SKEW_BACKDATE_S * 1000);
}

export function finish(authorities: readonly AuthorityRecord[], nowMs: number, lastNotAfter: (a: AuthorityRecord) => Date | null): AuthorityRecord[] {
  const retired = authorities.filter((a) => a.state === 'retired');
  if (retired.length === 0) throw refuse('finish', "no retired authority; run 'weft ca rotate activate' first");
  for (const r of retired) {
    const at = dropAllowedAt(r, lastNotAfter(r));
    if (nowMs < at.getTime()) {
      throw refuse('finish', `certificates signed by authority ${r.id} are valid until ${at.toISOString()}; dropping its root now would break them. Try again after that time`);
    }
  }
  const at = new Date(nowMs).toISOString();
  return authorities.map((a) => (a.state === 'retired' ? { ...a, state: 'dropped', droppedAt: at } : a));
}
