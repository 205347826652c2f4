// One outbound HTTP/1 call through the resilience stages, in order:
//
//   route rule (404 if none matches) → subset (sticky hash or weighted) → fault injection (abort / delay)
//   → total timeout (504) → pending limit (503 overflow) → attempts: balance over endpoints whose breaker lets
//   them (503 circuit-open / no-healthy-upstream) → forward under the breaker with a per-try timeout → retry on
//   connect failure, reset or a configured status, for idempotent methods with a replayable body, while the
//   retry budget allows → mirror a copy, fire and forget.

import type { RetryPolicy, RouteRule } from '../../control-plane/config/types.ts';
import type { UpstreamRuntime } from '../config/runtime.ts';
import { bufferSmallBody, relayH1 } from '../http/h1-proxy.ts';
import type { H1Request, H1Response } from '../http/h1-message.ts';
import { appNeverReached, meshReply, type MeshReason } from '../http/mesh-reply.ts';
import { CallerGone, UpstreamFailure, type EndpointHealth } from '../resilience/endpoint-health.ts';
import type { RetryBudget } from '../resilience/retry-budget.ts';
import type { ResilienceState } from '../resilience/state.ts';
import { pickP2c } from '../routing/balancer.ts';
import { matchRule, pickDestination, type RequestFacts } from '../routing/route-table.ts';
import type { RequestObservation } from '../telemetry/observer.ts';
import { mirror } from './h1-mirror.ts';
import type { PeerConnector } from './peers.ts';

/** RFC 9110 §9.2.2: methods a retry cannot make do twice what was asked once. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const ABANDONED = new Set(['WEFT_ABORTED', 'UND_ERR_ABORTED']); // how a try fails when its caller left (its response closed)
/** Bodies up to this size are kept in memory so a retry can resend them; larger ones are streamed once. */
export const MAX_RETRY_BODY = 64 * 1024;
/** How long a mirrored copy may take when its rule has no timeout (Envoy's default route timeout). */
export const MIRROR_TIMEOUT_MS = 15_000;

export interface HttpCall {
  readonly upstream: UpstreamRuntime;
  readonly req: H1Request;
  readonly res: H1Response;
  /** headers for the next hop (already cleaned, host set, trace context added) */
  readonly headers: Record<string, string | string[]>;
  /** origin-form target: path and query */
  readonly target: string;
  readonly facts: RequestFacts;
  readonly peers: PeerConnector;
  readonly state: ResilienceState;
  readonly obs: RequestObservation;
  readonly random?: () => number;
}

/** FNV-1a: a stable number in [0, 1) for a stickiness key, so one user keeps landing on one subset. */
export function stickyNumber(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32;
}

function stickyKey(rule: RouteRule, facts: RequestFacts): string | null {
  if (!rule.stickiness) return null;
  if (rule.stickiness.type === 'header') {
    const v = facts.header(rule.stickiness.name);
    return v === undefined ? null : Array.isArray(v) ? v.join(',') : v;
  }
  const cookie = facts.header('cookie');
  const all = Array.isArray(cookie) ? cookie.join('; ') : (cookie ?? '');
  for (const part of all.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === rule.stickiness.name) return v.join('=');
  }
  return null;
}

/** The request body as attempts sent it: read into memory (null: none), 'stream' (too large or of unknown length), or undefined (streamed without looking) */
type SentBody = Buffer | null | 'stream' | undefined;

/**
 * Makes the call; `onUnexpected` gets an error no stage expected (a bug), once the call's resources are released.
 * Callbacks, not async functions: this is every outbound request's path, and the promise chain it replaced (four
 * async functions deep) cost ~3.5 KB of garbage per request.
 */
export function callHttp(call: HttpCall, onUnexpected: (err: Error) => void): void {
  new OutboundCall(call, onUnexpected).start();
}

/** One call's state, from the route rule to its last attempt. */
class OutboundCall {
  readonly #call: HttpCall;
  readonly #onUnexpected: (err: Error) => void;
  readonly #random: () => number;
  #rule: RouteRule | null = null;
  #subset: string | null = null;
  #expired = false;
  #over = false;
  #deadline: NodeJS.Timeout | null = null;
  #entered = false;
  #mirrorTo: string | null = null;
  #abortAttempt: ((err?: Error) => void) | null = null;
  // attempts
  #policy: RetryPolicy | null = null;
  #maxRetries = 0;
  #body: SentBody = undefined;
  #budget: RetryBudget | null = null;
  #endpoints: readonly { readonly address: string }[] = [];
  #tried: Set<string> | null = null;
  #n = 0;
  #health: EndpointHealth | null = null;
  #retryStatus = false;
  /** whether to relay an answer head, under a retry policy (made once per call that has one) */
  #accept: ((status: number, rawHeaders: readonly string[]) => boolean) | undefined = undefined;
  #relayed = false;
  #sent = false; // this try's request reached the endpoint: a failure now is a reset, not a connect failure

  constructor(call: HttpCall, onUnexpected: (err: Error) => void) {
    this.#call = call;
    this.#onUnexpected = onUnexpected;
    this.#random = call.random ?? Math.random;
  }

  start(): void {
    this.#guard(this.#route);
  }

  #route(): void {
    const { upstream, facts } = this.#call;
    const compiled = upstream.routeTable ? matchRule(upstream.routeTable, facts) : null;
    if (upstream.routeTable && !compiled) {
      this.#reply(404, 'no-route', `no rule of route ${upstream.route!.namespace}/${upstream.route!.name} matches ${facts.method} ${facts.path}`);
      return;
    }
    const rule = (this.#rule = compiled?.rule ?? null);
    const sticky = rule ? stickyKey(rule, facts) : null;
    const subset = (this.#subset = compiled ? pickDestination(compiled, sticky === null ? this.#random() : stickyNumber(sticky)).subset : null);
    this.#call.obs.set({ subset, route: rule?.name ?? (compiled ? String(upstream.routeTable!.rules.indexOf(compiled)) : undefined) });
    if (!rule) {
      this.#admit();
      return;
    }
    if (rule.fault?.abort && this.#random() * 100 < rule.fault.abort.percent) {
      this.#reply(rule.fault.abort.status, 'fault-injected', `fault injected by route ${upstream.route!.name}: abort with ${rule.fault.abort.status}`);
      return;
    }
    // The total timeout covers everything from here: an injected delay, every try, the answer.
    if (rule.timeoutMs) this.#deadline = setTimeout(() => this.#guard(this.#timedOut), rule.timeoutMs);
    if (rule.fault?.delay && this.#random() * 100 < rule.fault.delay.percent) {
      setTimeout(() => this.#guard(this.#admit), rule.fault.delay.fixedMs);
      return;
    }
    this.#admit();
  }

  /** Runs a continuation; a throw in it (a bug) ends the call rather than the process. */
  #guard(step: () => void): void {
    try {
      step.call(this);
    } catch (err) {
      this.#end();
      this.#onUnexpected(err as Error);
    }
  }

  #timedOut(): void {
    this.#expired = true;
    this.#abortAttempt?.(new Error('route timeout'));
    if (!this.#call.res.headersSent) this.#reply(504, 'timeout', `no answer from ${this.#call.upstream.key} within the route's timeout of ${this.#rule!.timeoutMs} ms`);
    else this.#call.res.destroy();
    this.#end(); // over now, not when the aborted try settles or a body being read ends: the pending slot is free
  }

  /** Past the faults: counted against the pending limit, and the body read when it may be sent twice. */
  #admit(): void {
    const { upstream, req, res, state } = this.#call;
    if (this.#expired || res.closed) return this.#end(); // timed out, or the caller left during a fault delay
    if (!state.enter(upstream)) {
      this.#reply(503, 'overflow', `${upstream.key} has ${upstream.trafficPolicy!.connectionPool.maxPendingRequests} requests pending, its limit; try again later`);
      return this.#end();
    }
    this.#entered = true;
    const rule = this.#rule;
    this.#mirrorTo = rule?.mirror && this.#random() * 100 < rule.mirror.percent ? rule.mirror.subset : null;
    this.#policy = rule?.retries ?? null;
    this.#maxRetries = this.#policy && IDEMPOTENT.has(req.method) ? this.#policy.attempts : 0;
    // Read into memory (up to MAX_RETRY_BODY) when it may be sent again: on a retry, or to the mirror.
    if (this.#maxRetries > 0 || this.#mirrorTo !== null) {
      bufferSmallBody(req, MAX_RETRY_BODY).then(
        (body) => this.#guard(() => this.#firstAttempt(body)),
        (err: Error) => {
          this.#end();
          // The caller leaving mid-body is its own business, not a fault of the sidecar worth a stack trace.
          if (!this.#call.res.closed && (err as Error & { code?: string }).code !== 'ECONNRESET') this.#onUnexpected(err);
        },
      );
      return;
    }
    this.#firstAttempt(undefined);
  }

  #firstAttempt(body: SentBody): void {
    if (this.#expired) return this.#end();
    const { upstream, state } = this.#call;
    const policy = this.#policy;
    this.#body = body;
    this.#budget = policy ? state.budget(upstream, policy.budget.percent, policy.budget.minPerSecond) : null;
    this.#budget?.request();
    this.#endpoints = upstream.subsets.get(this.#subset ?? '')?.endpoints ?? [];
    this.#tried = this.#maxRetries > 0 ? new Set<string>() : null;
    if (this.#maxRetries > 0) this.#accept = (status, raw) => this.#acceptAnswer(status, raw);
    this.#attempt();
  }

  #canRetry(): boolean {
    if (this.#body === 'stream' || this.#n >= this.#maxRetries || this.#expired || this.#call.res.closed) return false;
    if (this.#budget!.tryRetry()) return true;
    this.#call.obs.set({ retryBudgetExhausted: true });
    return false;
  }

  #attempt(): void {
    const { upstream, state, obs } = this.#call;
    const subset = this.#subset;
    if (this.#endpoints.length === 0) {
      this.#reply(503, 'no-healthy-upstream', `no endpoint of ${upstream.key}${subset ? ` (subset ${subset})` : ''} is available`);
      return this.#end();
    }
    const candidates = state.available(upstream, this.#endpoints, this.#tried);
    if (candidates.length === 0) {
      this.#reply(503, 'circuit-open', `every endpoint of ${upstream.key}${subset ? ` (subset ${subset})` : ''} has its circuit breaker open`);
      return this.#end();
    }
    const health = (this.#health = upstream.trafficPolicy?.loadBalancer.type === 'round-robin' ? upstream.subsets.get(subset ?? '')!.balancer.pick(candidates)! : pickP2c(candidates)!);
    this.#tried?.add(health.address);
    obs.set({ endpoint: health.address, retries: this.#n, breaker: health.state });
    this.#retryStatus = false;
    this.#relayed = false;
    this.#sent = false;
    health.runCallback(this.#forward, this.#settled);
  }

  /** One try, under the endpoint's breaker: a 5xx settles as an UpstreamFailure, so that the breaker counts it. */
  readonly #forward = (settled: (err: Error | null) => void): void => {
    const { upstream, req, res, peers, headers, target } = this.#call;
    const health = this.#health!;
    const policy = this.#policy;
    let perTry: NodeJS.Timeout | null = null;
    relayH1(
      peers.h1Pool(upstream, health.address),
      req,
      res,
      headers,
      {
        path: target,
        body: this.#body === 'stream' ? undefined : this.#body,
        onAbortable: (abort) => {
          this.#abortAttempt = abort;
        },
        // The per-try timeout runs from the end of the request (as Envoy's), so a long upload is not cut off; once,
        // though the pool may send the request again on a new connection. A replayable body goes with its head.
        onRequestSent: policy
          ? () => {
              this.#sent = true;
              const ms = policy.perTryTimeoutMs;
              if (ms) perTry ??= setTimeout(() => this.#abortAttempt?.(Object.assign(new Error(`no answer within the per-try timeout of ${ms} ms`), { code: 'WEFT_PER_TRY_TIMEOUT' })), ms);
            }
          : undefined,
        accept: this.#accept,
      },
      (err, status, relayed) => {
        if (perTry) clearTimeout(perTry);
        this.#relayed = relayed;
        if (err && res.closed && !this.#expired && ABANDONED.has(err.code ?? '')) settled(new CallerGone(`the caller left its call to ${health.address}`));
        else settled(err ?? (status >= 500 ? new UpstreamFailure(status, `${health.address} answered ${status}`) : null));
      },
    );
  };

  /**
   * A retryable answer is dropped (not relayed) only when a retry is sure to follow: a status `on` names, or the peer
   * sidecar's word that its app was never reached (no connection made to it), a connect failure of this endpoint.
   */
  #acceptAnswer(status: number, raw: readonly string[]): boolean {
    const on = this.#policy!.on;
    const retryable = on.statuses.includes(status) || (status === 503 && (on.connectFailure || on.reset) && appNeverReached(raw));
    return !(retryable && (this.#retryStatus = this.#canRetry()));
  }

  readonly #settled = (err: Error | null): void => this.#guard(() => this.#afterTry(err));

  #afterTry(err: Error | null): void {
    const { upstream, res } = this.#call;
    if (this.#expired || res.closed) return this.#end();
    if (this.#retryStatus) return this.#next(); // the answer was dropped because a retry follows
    if (!err || this.#relayed) return this.#end(); // relayed (a 5xx too: the breaker counted it)
    const e = err as Error & { code?: string };
    if (e.code === 'EOPENBREAKER' && this.#n < 10) return this.#next(); // opened between the pick and the call: pick again (not a retry)
    if (e.code === 'WEFT_PEER_IDENTITY') {
      this.#reply(502, 'peer-identity-mismatch', e.message);
      return this.#end();
    }
    const policy = this.#policy;
    // As Envoy's retry_on: `reset` is any try with no answer (connection not made, lost, per-try timeout), `connect-failure` only the first.
    const retryOn = this.#sent ? policy?.on.reset : policy?.on.connectFailure || policy?.on.reset;
    if (!(err instanceof UpstreamFailure) && retryOn && this.#canRetry()) return this.#next();
    if (err instanceof UpstreamFailure) return this.#end();
    if (res.headersSent) res.destroy();
    else {
      const n = this.#n;
      const after = n > 0 ? ` (after ${n} retr${n === 1 ? 'y' : 'ies'})` : '';
      if (e.code === 'WEFT_PER_TRY_TIMEOUT') this.#reply(504, 'timeout', `${upstream.key} at ${this.#health!.address}: ${e.message}${after}`);
      else this.#reply(503, 'upstream-connect-failure', `${upstream.key} at ${this.#health!.address} failed: ${e.message}${after}`);
    }
    this.#end();
  }

  #next(): void {
    this.#n++;
    this.#attempt();
  }

  /** The call is over: the pending count, the mirror's copy, the route timeout. Once. */
  #end(): void {
    if (this.#over) return;
    this.#over = true;
    if (this.#deadline) clearTimeout(this.#deadline);
    if (!this.#entered) return;
    this.#call.state.leave(this.#call.upstream);
    if (this.#mirrorTo) mirror(this.#call, this.#mirrorTo, this.#body, this.#rule!.timeoutMs ?? MIRROR_TIMEOUT_MS);
  }

  #reply(status: number, reason: MeshReason, message: string): void {
    meshReply(this.#call.res, status, reason, message);
  }
}
