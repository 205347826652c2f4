// One outbound HTTP/1 call through the resilience stages, in order:
//
//   route rule (404 if none matches) → subset (sticky hash or weighted) → fault injection (abort / delay)
//   → total timeout (504) → pending limit (503 overflow) → attempts: balance over endpoints whose breaker lets
//   them (503 circuit-open / no-healthy-upstream) → forward under the breaker with a per-try timeout → retry on
//   connect failure, reset or a configured status, for idempotent methods with a replayable body, while the
//   retry budget allows → mirror a copy, fire and forget.

import type { RouteRule } from '../../control-plane/config/types.ts';
import type { UpstreamRuntime } from '../config/runtime.ts';
import { bufferSmallBody, forwardH1 } from '../http/h1-proxy.ts';
import type { H1Request, H1Response } from '../http/h1-message.ts';
import { meshReply, type MeshReason } from '../http/mesh-reply.ts';
import { UpstreamFailure, type EndpointHealth } from '../resilience/endpoint-health.ts';
import type { ResilienceState } from '../resilience/state.ts';
import { pickP2c } from '../routing/balancer.ts';
import { matchRule, pickDestination, type RequestFacts } from '../routing/route-table.ts';
import type { RequestObservation } from '../telemetry/observer.ts';
import type { PeerConnector } from './peers.ts';

/** RFC 9110 §9.2.2: methods a retry cannot make do twice what was asked once. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
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

function reply(call: HttpCall, status: number, reason: MeshReason, message: string): void {
  meshReply(call.res, status, reason, message);
}

export async function callHttp(call: HttpCall): Promise<void> {
  const { upstream, facts } = call;
  const random = call.random ?? Math.random;
  const compiled = upstream.routeTable ? matchRule(upstream.routeTable, facts) : null;
  if (upstream.routeTable && !compiled) {
    reply(call, 404, 'no-route', `no rule of route ${upstream.route!.namespace}/${upstream.route!.name} matches ${facts.method} ${facts.path}`);
    return;
  }
  const rule = compiled?.rule ?? null;
  const sticky = rule ? stickyKey(rule, facts) : null;
  const subset = compiled ? pickDestination(compiled, sticky === null ? random() : stickyNumber(sticky)).subset : null;
  call.obs.set({ subset, route: rule?.name ?? (compiled ? String(upstream.routeTable!.rules.indexOf(compiled)) : undefined) });

  if (rule?.fault?.abort && random() * 100 < rule.fault.abort.percent) {
    reply(call, rule.fault.abort.status, 'fault-injected', `fault injected by route ${upstream.route!.name}: abort with ${rule.fault.abort.status}`);
    return;
  }

  // The total timeout covers everything from here: an injected delay, every try, the answer.
  let expired = false;
  let abortAttempt: ((err?: Error) => void) | null = null;
  const deadline = rule?.timeoutMs
    ? setTimeout(() => {
        expired = true;
        abortAttempt?.(new Error('route timeout'));
        if (!call.res.headersSent) reply(call, 504, 'timeout', `no answer from ${upstream.key} within the route's timeout of ${rule.timeoutMs} ms`);
        else call.res.destroy();
      }, rule.timeoutMs)
    : null;
  try {
    if (rule?.fault?.delay && random() * 100 < rule.fault.delay.percent) {
      await new Promise((r) => setTimeout(r, rule.fault!.delay!.fixedMs));
      if (expired) return;
    }
    if (!call.state.enter(upstream)) {
      reply(call, 503, 'overflow', `${upstream.key} has ${upstream.trafficPolicy!.connectionPool.maxPendingRequests} requests pending, its limit; try again later`);
      return;
    }
    const mirrorTo = rule?.mirror && random() * 100 < rule.mirror.percent ? rule.mirror.subset : null;
    let body: SentBody;
    try {
      body = await attempts(call, rule, subset, mirrorTo !== null, () => expired, (abort) => (abortAttempt = abort));
    } finally {
      call.state.leave(upstream);
    }
    if (mirrorTo) mirror(call, mirrorTo, body, rule!.timeoutMs ?? MIRROR_TIMEOUT_MS);
  } finally {
    if (deadline) clearTimeout(deadline);
  }
}

/** The request body as attempts sent it: read into memory (null: none), 'stream' (too large or of unknown length), or undefined (streamed without looking) */
type SentBody = Buffer | null | 'stream' | undefined;

async function attempts(call: HttpCall, rule: RouteRule | null, subset: string | null, copied: boolean, expired: () => boolean, setAbort: (abort: (err?: Error) => void) => void): Promise<SentBody> {
  const { upstream, req } = call;
  const policy = rule?.retries ?? null;
  const maxRetries = policy && IDEMPOTENT.has(req.method) ? policy.attempts : 0;
  // Read into memory (up to MAX_RETRY_BODY) when it may be sent again: on a retry, or to the mirror.
  const body = maxRetries > 0 || copied ? await bufferSmallBody(req, MAX_RETRY_BODY) : undefined;
  const replayable = body !== 'stream';
  const budget = policy ? call.state.budget(upstream, policy.budget.percent, policy.budget.minPerSecond) : null;
  budget?.request();
  const pool = upstream.subsets.get(subset ?? '');
  const endpoints = pool?.endpoints ?? [];
  const tried = maxRetries > 0 ? new Set<string>() : null;
  const canRetry = (n: number) => {
    if (!replayable || n >= maxRetries || expired() || call.res.closed) return false;
    if (budget!.tryRetry()) return true;
    call.obs.set({ retryBudgetExhausted: true });
    return false;
  };

  for (let n = 0; ; n++) {
    if (endpoints.length === 0) {
      reply(call, 503, 'no-healthy-upstream', `no endpoint of ${upstream.key}${subset ? ` (subset ${subset})` : ''} is available`);
      return body;
    }
    const candidates = call.state.available(upstream, endpoints, tried);
    if (candidates.length === 0) {
      reply(call, 503, 'circuit-open', `every endpoint of ${upstream.key}${subset ? ` (subset ${subset})` : ''} has its circuit breaker open`);
      return body;
    }
    const health: EndpointHealth = upstream.trafficPolicy?.loadBalancer.type === 'round-robin' ? pool!.balancer.pick(candidates)! : pickP2c(candidates)!;
    tried?.add(health.address);
    call.obs.set({ endpoint: health.address, retries: n, breaker: health.state });
    let retryStatus = false;
    let relayed = false;
    try {
      await health.run(async () => {
        let perTry: NodeJS.Timeout | null = null;
        try {
          const r = await forwardH1(call.peers.h1Pool(upstream, health.address), req, call.res, call.headers, {
            path: call.target,
            body: body === 'stream' ? undefined : body,
            onAbortable: (abort) => {
              setAbort(abort);
              if (policy?.perTryTimeoutMs) perTry = setTimeout(() => abort(new Error(`per-try timeout of ${policy.perTryTimeoutMs} ms`)), policy.perTryTimeoutMs);
            },
            // A retryable status is dropped (not relayed) only when a retry is sure to follow.
            accept: (status) => !(policy?.on.statuses.includes(status) && (retryStatus = canRetry(n))),
          });
          relayed = r.relayed;
          if (r.status >= 500) throw new UpstreamFailure(r.status, `${health.address} answered ${r.status}`);
        } finally {
          if (perTry) clearTimeout(perTry);
        }
      });
      return body;
    } catch (err) {
      if (expired() || call.res.closed) return body;
      if (relayed) return body; // a 5xx already relayed to the caller: counted by the breaker, nothing more to do
      if (retryStatus) continue;
      const e = err as Error & { code?: string };
      if (e.code === 'EOPENBREAKER') {
        if (n < 10) continue; // opened between the pick and the call: pick again (not a retry)
      }
      if (e.code === 'WEFT_PEER_IDENTITY') {
        reply(call, 502, 'peer-identity-mismatch', e.message);
        return body;
      }
      const connectOrReset = !(err instanceof UpstreamFailure);
      if (connectOrReset && (policy?.on.connectFailure || policy?.on.reset) && canRetry(n)) continue;
      if (err instanceof UpstreamFailure) return body;
      if (call.res.headersSent) {
        call.res.destroy();
        return body;
      }
      reply(call, 503, 'upstream-connect-failure', `${upstream.key} at ${health.address} failed: ${e.message}${n > 0 ? ` (after ${n} retr${n === 1 ? 'y' : 'ies'})` : ''}`);
      return body;
    }
  }
}

/** As Envoy and Istio mark a mirrored request: "-shadow" after the host name (before a port). */
export function shadowHost(host: string): string {
  const port = /:\d+$/.exec(host);
  return port ? `${host.slice(0, port.index)}-shadow${port[0]}` : `${host}-shadow`;
}

/**
 * A copy of the request to the mirror subset, its Host marked "-shadow"; its answer is read and thrown away, and
 * nobody waits for it. It is given up after the rule's timeout, or MIRROR_TIMEOUT_MS. A body goes with it when
 * it was read into memory (up to MAX_RETRY_BODY, with a Content-Length); a larger one, or one of unknown length,
 * was streamed once to the real destination, and that request is not copied.
 */
function mirror(call: HttpCall, subset: string, sent: SentBody, timeoutMs: number): void {
  const pool = call.upstream.subsets.get(subset);
  const endpoint = pool?.balancer.pick(pool.endpoints);
  const body = call.req.body === null ? null : sent;
  if (!endpoint || (body !== null && !Buffer.isBuffer(body))) return;
  const host = call.headers.host;
  const headers = typeof host === 'string' ? { ...call.headers, host: shadowHost(host) } : call.headers;
  let timer: NodeJS.Timeout | null = null;
  const done = () => timer && clearTimeout(timer);
  call.peers.h1Pool(call.upstream, endpoint.address).dispatch(
    { method: call.req.method, path: call.target, headers, body },
    {
      // A copy that hangs is given up, so that copies never pile up in the mirror's pool.
      onConnect: (abort) => void (timer = setTimeout(() => abort(), timeoutMs)),
      onHeaders() {},
      onData: () => true,
      onComplete: done,
      onError: done,
    },
  );
}
