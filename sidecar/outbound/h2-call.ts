// One outbound HTTP/2 (gRPC) call: the route rule and subset, fault injection (an abort, as the gRPC status
// the HTTP status maps to; a delay), the route's total timeout (504, or DEADLINE_EXCEEDED for gRPC), the
// pending limit (503 overflow, UNAVAILABLE for gRPC), an endpoint whose breaker lets it (not one draining, while
// another is open), a session to it with room for the stream (./h2-pool.ts; none: 503 overflow), then the stream
// relayed under the endpoint's breaker.
// Under a rule's retry policy, a try that failed before any answer reached the client is made again (see
// attempts below); an answer already streaming to the client is never retried, and one that outruns the
// per-try or the route's timeout is cut off (gRPC: DEADLINE_EXCEEDED in its trailers). A stream the upstream
// refused unprocessed is sent again with or without a policy (see unretried). A rule's mirror gets a copy of
// the call once it is over (./h2-mirror.ts).

import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { UpstreamRuntime } from '../config/runtime.ts';
import type { RetryPolicy, RouteRule } from '../../control-plane/config/types.ts';
import { forwardH2, meshReplyH2, RefusedStreamError, relayH2 } from '../http/h2-proxy.ts';
import { grpcStatusForHttp, grpcTimeoutMs } from '../http/grpc-status.ts';
import { REASON_HEADER } from '../http/headers.ts';
import { ReplayableBody } from '../http/replayable-body.ts';
import { UpstreamFailure, type EndpointHealth } from '../resilience/endpoint-health.ts';
import type { ResilienceState } from '../resilience/state.ts';
import { pickP2c } from '../routing/balancer.ts';
import { matchRule, pickDestination, type RequestFacts } from '../routing/route-table.ts';
import type { RequestObservation } from '../telemetry/observer.ts';
import { MAX_RETRY_BODY, MIRROR_TIMEOUT_MS, stickyNumber } from './http-call.ts';
import { mirrorH2 } from './h2-mirror.ts';
import type { PeerConnector } from './peers.ts';

export interface H2Call {
  readonly upstream: UpstreamRuntime;
  readonly stream: ServerHttp2Stream;
  readonly headers: OutgoingHttpHeaders;
  readonly facts: RequestFacts;
  readonly grpc: boolean;
  readonly peers: PeerConnector;
  readonly state: ResilienceState;
  readonly obs: RequestObservation;
}

/**
 * Makes the call; `onUnexpected` gets an error no stage expected (a bug), once the call's resources are released.
 * Callbacks, not an async function, as the HTTP/1 path's OutboundCall: this is every outbound gRPC call's path.
 */
export function callH2(call: H2Call, incoming: IncomingHttpHeaders, onUnexpected: (err: Error) => void): void {
  new H2OutboundCall(call, incoming, onUnexpected).start();
}

/** One call's state, from the route rule to the end of its last try. */
class H2OutboundCall {
  readonly #call: H2Call;
  readonly #incoming: IncomingHttpHeaders;
  readonly #onUnexpected: (err: Error) => void;
  #rule: RouteRule | null = null;
  #subset: string | null = null;
  #expired = false;
  #deadline: NodeJS.Timeout | null = null;
  #entered = false;
  #over = false;
  #mirrorTo: string | null = null;
  #body: ReplayableBody | null = null;

  constructor(call: H2Call, incoming: IncomingHttpHeaders, onUnexpected: (err: Error) => void) {
    this.#call = call;
    this.#incoming = incoming;
    this.#onUnexpected = onUnexpected;
  }

  start(): void {
    this.#guard(this.#route);
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

  readonly #isExpired = (): boolean => this.#expired;

  #route(): void {
    const { upstream, stream, grpc } = this.#call;
    const compiled = upstream.routeTable ? matchRule(upstream.routeTable, this.#call.facts) : null;
    if (upstream.routeTable && !compiled) {
      meshReplyH2(stream, 404, 'no-route', `no rule of route ${upstream.route!.name} matches ${this.#call.facts.method} ${this.#call.facts.path}`, grpc);
      return;
    }
    const rule = (this.#rule = compiled?.rule ?? null);
    const stickyName = rule?.stickiness?.type === 'header' ? rule.stickiness.name : null;
    const sticky = stickyName ? this.#incoming[stickyName] : undefined;
    this.#subset = compiled ? pickDestination(compiled, typeof sticky === 'string' ? stickyNumber(sticky) : Math.random()).subset : null;
    const fault = rule?.fault ?? null;
    if (fault?.abort && Math.random() * 100 < fault.abort.percent) {
      // As Envoy does for gRPC: the HTTP status given becomes the gRPC status a client would derive from it.
      const status = fault.abort.status;
      meshReplyH2(stream, status, 'fault-injected', `fault injected by route ${upstream.route!.name}: abort with ${status}`, grpc, grpc ? { 'grpc-status': String(grpcStatusForHttp(status)) } : {});
      return;
    }
    // The total timeout covers everything from here: an injected delay, the endpoint, the answer. A gRPC caller's
    // own deadline (grpc-timeout) caps it, as Istio configures Envoy: no try starts, nor goes on, past it.
    const callerMs = grpc ? grpcTimeoutMs(this.#incoming['grpc-timeout']) : null;
    const routeMs = rule?.timeoutMs ?? null;
    const byCaller = callerMs !== null && (routeMs === null || callerMs < routeMs);
    const timeoutMs = byCaller ? callerMs : routeMs;
    if (timeoutMs !== null) {
      this.#deadline = setTimeout(() => {
        this.#expired = true;
        meshReplyH2(stream, 504, 'timeout', `no answer from ${upstream.key} within ${byCaller ? "the caller's grpc-timeout" : "the route's timeout"} of ${timeoutMs} ms`, grpc);
      }, timeoutMs);
    }
    if (fault?.delay && Math.random() * 100 < fault.delay.percent) {
      setTimeout(() => this.#guard(this.#afterDelay), fault.delay.fixedMs);
      return;
    }
    this.#admit();
  }

  #afterDelay(): void {
    if (this.#expired || this.#call.stream.destroyed) return this.#end();
    this.#admit();
  }

  /** Past the faults: counted against the pending limit, then the tries. */
  #admit(): void {
    const { upstream, stream, grpc, state } = this.#call;
    // maxPendingRequests counts open streams too (as Istio's http2MaxRequests): a stream is a request in flight.
    if (!state.enter(upstream)) {
      meshReplyH2(stream, 503, 'overflow', `${upstream.key} has ${upstream.trafficPolicy!.connectionPool.maxPendingRequests} requests pending, its limit; try again later`, grpc);
      return this.#end();
    }
    this.#entered = true;
    const subset = this.#subset;
    const endpoints = upstream.subsets.get(subset ?? '')?.endpoints ?? [];
    const open = this.#call.peers.h2Candidates(upstream, state.available(upstream, endpoints));
    if (open.length === 0) {
      const none = endpoints.length === 0;
      meshReplyH2(stream, 503, none ? 'no-healthy-upstream' : 'circuit-open', none ? `no endpoint of ${upstream.key} is available` : `every endpoint of ${upstream.key} has its circuit breaker open`, grpc);
      return this.#end();
    }
    // The request stream is kept (up to MAX_RETRY_BODY) as it is sent, for a retry, a refused stream or the mirror.
    const rule = this.#rule;
    this.#mirrorTo = rule?.mirror && Math.random() * 100 < rule.mirror.percent ? rule.mirror.subset : null;
    const body = (this.#body = new ReplayableBody(stream, MAX_RETRY_BODY));
    if (rule?.retries) attempts(this.#call, rule.retries, subset, endpoints, body, this.#isExpired).then(() => this.#triesDone(null), this.#triesDone);
    else unretried(this.#call, subset, endpoints, open, body, this.#isExpired, this.#triesDone);
  }

  readonly #triesDone = (err: Error | null): void => {
    this.#guard(() => (err ? this.#failed(err) : this.#succeeded()));
  };

  #succeeded(): void {
    if (this.#mirrorTo) mirrorH2(this.#call, this.#mirrorTo, this.#body!, this.#rule!.timeoutMs ?? MIRROR_TIMEOUT_MS);
    this.#end();
  }

  /** No try got an answer to the caller: the mesh answers, naming why. */
  #failed(err: Error): void {
    this.#end();
    const { upstream, stream, grpc } = this.#call;
    const e = err as Error & { code?: string };
    if (e.code === 'WEFT_PEER_IDENTITY') meshReplyH2(stream, 502, 'peer-identity-mismatch', e.message, grpc);
    else if (e.code === 'WEFT_H2_POOL_FULL') meshReplyH2(stream, 503, 'overflow', e.message, grpc);
    else meshReplyH2(stream, 503, failureReason(e), `upstream ${upstream.key} failed: ${e.message}`, grpc);
  }

  /** The call is over: the pending count, the total timeout. Once. */
  #end(): void {
    if (this.#over) return;
    this.#over = true;
    if (this.#entered) this.#call.state.leave(this.#call.upstream);
    if (this.#deadline) clearTimeout(this.#deadline);
  }
}

/** The endpoint a try goes to, by the upstream's balancer. */
function pickEndpoint(upstream: UpstreamRuntime, subset: string | null, open: readonly EndpointHealth[]): EndpointHealth {
  return upstream.trafficPolicy?.loadBalancer.type === 'round-robin' ? upstream.subsets.get(subset ?? '')!.balancer.pick(open)! : pickP2c(open)!;
}

/** The x-weft-reason of a try that failed with `e` before any answer. */
function failureReason(e: Error & { code?: string }): 'circuit-open' | 'upstream-refused' | 'upstream-connect-failure' {
  if (e.code === 'EOPENBREAKER') return 'circuit-open';
  return e instanceof RefusedStreamError ? 'upstream-refused' : 'upstream-connect-failure';
}

/** Why a refused stream was not sent again, for the caller's message; '' when nothing stood in the way. */
function notResent(body: ReplayableBody): string {
  return body.intact ? '' : `; not sent again, as its request went past the ${MAX_RETRY_BODY} bytes kept for a retry`;
}

/**
 * A call with no retry policy: one try, except that a stream the upstream refused unprocessed (REFUSED_STREAM, or
 * past a GOAWAY's last stream id) is sent once more, on another endpoint if there is one, while every byte of the
 * request read so far is kept. As Go's and grpc-js's HTTP/2 clients do, and Istio's default retryOn (refused-stream)
 * has Envoy do. It takes nothing from a retry budget: the refused try did no work, so an app still sees the call
 * once. Counted against the endpoint as a reset is.
 */
function unretried(call: H2Call, subset: string | null, endpoints: readonly { readonly address: string }[], open: readonly EndpointHealth[], body: ReplayableBody, expired: () => boolean, done: (err: Error | null) => void): void {
  const { upstream, stream } = call;
  let n = 0;
  // Callbacks, not an async loop: every call without a retry policy comes this way.
  const attempt = (): void => {
    const health = pickEndpoint(upstream, subset, open);
    call.obs.set({ subset, endpoint: health.address, breaker: health.state, ...(n > 0 ? { retries: n } : {}) });
    const peer = call.peers.h2Pool(upstream, health.address);
    // Checked before the breaker: a full pool is this sidecar's limit, not the endpoint failing.
    if (peer.full) {
      poolFull(call, health.address);
      return done(null);
    }
    health.runCallback(
      (settled) => relayH2(stream, peer, call.headers, { body }, (err, outcome) => settled(err ?? (outcome.broken ? brokenOff(health) : null))),
      (err) => {
        // Relayed, broken off or not: the caller has its answer (the breaker counted a break).
        if (!err || err instanceof UpstreamFailure) return done(null);
        if (!(err instanceof RefusedStreamError) || expired() || stream.destroyed) return done(err);
        if (n > 0 || !body.intact) return done(new RefusedStreamError(`${err.message}${n > 0 ? ' on a second try too' : ''}${notResent(body)}`));
        open = call.peers.h2Candidates(upstream, call.state.available(upstream, endpoints, new Set([health.address])));
        if (open.length === 0) return done(err);
        n++;
        attempt();
      },
    );
  };
  attempt();
}

/** Every connection to the endpoint carries as many streams as its peer allows, and maxConnections allows no more. */
function poolFull(call: H2Call, address: string): void {
  const limit = call.upstream.trafficPolicy?.connectionPool.maxConnections;
  meshReplyH2(call.stream, 503, 'overflow', `every connection to ${call.upstream.key} at ${address}${limit ? ` (maxConnections ${limit})` : ''} carries as many streams as the peer allows; try again later`, call.grpc);
}

/** An answer the upstream broke off (a reset mid-answer): a failure of the endpoint, as Envoy's outlier detection counts a reset. */
function brokenOff(health: EndpointHealth): UpstreamFailure {
  return new UpstreamFailure(502, `${health.address} reset the stream before its answer ended`);
}

/** gRPC statuses that Envoy's outlier detection counts as 5xx: DEADLINE_EXCEEDED (504), INTERNAL (500), UNAVAILABLE (503). */
const ENDPOINT_FAILURES = new Set([4, 13, 14]);

/**
 * A call under a retry policy. The request body is kept (up to MAX_RETRY_BODY) as it is sent; a try that fails
 * before any answer reached the client (no connection, a reset, the per-try timeout, an answer head `on` names:
 * an HTTP status, or for gRPC a trailers-only answer's grpc-status; or, under connect-failure or reset, the peer
 * sidecar's `app-unavailable`, its app never reached) is made again on another endpoint
 * if there is one, once the whole body is in hand, while attempts and the retry budget allow. An answer that
 * has begun streaming to the client is never retried.
 */
async function attempts(call: H2Call, policy: RetryPolicy, subset: string | null, endpoints: readonly { readonly address: string }[], body: ReplayableBody, expired: () => boolean): Promise<void> {
  const { upstream, stream, grpc } = call;
  const budget = call.state.budget(upstream, policy.budget.percent, policy.budget.minPerSecond);
  budget.request();
  const tried = new Set<string>();
  /** `refused`: the try was refused unprocessed, so what was read of the request so far can be sent again now. */
  const canRetry = (n: number, refused = false) => {
    if (!(refused ? body.intact : body.replayable) || n >= policy.attempts || expired() || stream.destroyed) return false;
    if (budget.tryRetry()) return true;
    call.obs.set({ retryBudgetExhausted: true });
    return false;
  };
  // The peer sidecar's word that its app was never reached (no connection made) is a connect failure of that endpoint.
  const appDown = policy.on.connectFailure || policy.on.reset;
  const retryable = (h: IncomingHttpHeaders, endStream: boolean) => {
    if (policy.on.statuses.includes(Number(h[':status']))) return true;
    if (appDown && h[REASON_HEADER] === 'app-unavailable') return true;
    return grpc && endStream && policy.on.grpcStatuses.includes(Number(h['grpc-status']));
  };
  /** Whether a dropped answer is the endpoint failing: a 5xx, or a gRPC status Envoy counts as one (504, 500, 503). */
  const failing = (h: IncomingHttpHeaders) => Number(h[':status']) >= 500 || (grpc && ENDPOINT_FAILURES.has(Number(h['grpc-status'])));
  for (let n = 0; ; n++) {
    const open = call.peers.h2Candidates(upstream, call.state.available(upstream, endpoints, tried));
    if (open.length === 0) {
      meshReplyH2(stream, 503, 'circuit-open', `every endpoint of ${upstream.key} has its circuit breaker open`, grpc);
      return;
    }
    const health = pickEndpoint(upstream, subset, open);
    tried.add(health.address);
    call.obs.set({ subset, endpoint: health.address, retries: n, breaker: health.state });
    let again = false;
    let failed = false;
    let relayed = false;
    const peer = call.peers.h2Pool(upstream, health.address);
    if (peer.full) return poolFull(call, health.address);
    try {
      await health.run(async () => {
        const outcome = await forwardH2(stream, peer, call.headers, {
          body,
          answerTimeoutMs: policy.perTryTimeoutMs,
          // A retryable answer is dropped (not relayed) only when a retry is sure to follow.
          accept: (h, endStream) => !(retryable(h, endStream) && (again = canRetry(n)) && ((failed = failing(h)), true)),
        });
        relayed = outcome.relayed;
        // A dropped 5xx (or UNAVAILABLE...) counts against the endpoint, as for HTTP/1; a 429 or RESOURCE_EXHAUSTED
        // is the app's answer, not the endpoint failing.
        if (again && failed) throw new UpstreamFailure(503, `${health.address} answered with a status the retry policy names`);
        // An answer that outran the per-try timeout was cut off (the client got DEADLINE_EXCEEDED): the endpoint's failure too.
        if (outcome.timedOut) throw new UpstreamFailure(504, `${health.address} did not finish its answer within the per-try timeout`);
        if (outcome.broken) throw brokenOff(health);
      });
      if (again) continue;
      return;
    } catch (err) {
      if (again) continue;
      if (relayed || expired() || stream.destroyed) return;
      const e = err as Error & { code?: string };
      if (e.code === 'EOPENBREAKER' && n < 10) continue; // opened between the pick and the call: pick again
      if (e.code === 'WEFT_PEER_IDENTITY') {
        meshReplyH2(stream, 502, 'peer-identity-mismatch', e.message, grpc);
        return;
      }
      // Refused unprocessed: sent again whatever `on` names (Istio's default retryOn has refused-stream), under the
      // policy's attempts and budget.
      const refused = e instanceof RefusedStreamError;
      if (refused && canRetry(n, true)) continue;
      if (!refused && (policy.on.connectFailure || policy.on.reset)) {
        await body.decided();
        if (expired() || stream.destroyed) return;
        if (canRetry(n)) continue;
      }
      const after = n > 0 ? ` (after ${n} retr${n === 1 ? 'y' : 'ies'})` : '';
      // The last try outran its per-try timeout: a timeout for the caller (504, DEADLINE_EXCEEDED), as over HTTP/1.
      if (e.code === 'WEFT_PER_TRY_TIMEOUT') meshReplyH2(stream, 504, 'timeout', `upstream ${upstream.key} at ${health.address}: ${e.message}${after}`, grpc);
      else meshReplyH2(stream, 503, failureReason(e), `upstream ${upstream.key} at ${health.address} failed: ${e.message}${refused ? notResent(body) : ''}${after}`, grpc);
      return;
    }
  }
}
