// One outbound HTTP/2 (gRPC) call: the route rule and subset, fault injection (an abort, as the gRPC status
// the HTTP status maps to; a delay), the route's total timeout (504, or DEADLINE_EXCEEDED for gRPC), the
// pending limit (503 overflow, UNAVAILABLE for gRPC), an endpoint whose breaker lets it, then the stream
// relayed under the endpoint's breaker.
// Streams are not retried: a gRPC call may already be half-sent; grpc-js has its own retry policy.

import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { UpstreamRuntime } from '../config/runtime.ts';
import { forwardH2, grpcStatusForHttp, meshReplyH2 } from '../http/h2-proxy.ts';
import type { ResilienceState } from '../resilience/state.ts';
import { pickP2c } from '../routing/balancer.ts';
import { matchRule, pickDestination, type RequestFacts } from '../routing/route-table.ts';
import type { RequestObservation } from '../telemetry/observer.ts';
import { stickyNumber } from './http-call.ts';
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

export async function callH2(call: H2Call, incoming: IncomingHttpHeaders): Promise<void> {
  const { upstream, stream, grpc } = call;
  const compiled = upstream.routeTable ? matchRule(upstream.routeTable, call.facts) : null;
  if (upstream.routeTable && !compiled) {
    meshReplyH2(stream, 404, 'no-route', `no rule of route ${upstream.route!.name} matches ${call.facts.method} ${call.facts.path}`, grpc);
    return;
  }
  const rule = compiled?.rule ?? null;
  const stickyName = rule?.stickiness?.type === 'header' ? rule.stickiness.name : null;
  const sticky = stickyName ? incoming[stickyName] : undefined;
  const subset = compiled ? pickDestination(compiled, typeof sticky === 'string' ? stickyNumber(sticky) : Math.random()).subset : null;
  const fault = rule?.fault ?? null;
  if (fault?.abort && Math.random() * 100 < fault.abort.percent) {
    // As Envoy does for gRPC: the HTTP status given becomes the gRPC status a client would derive from it.
    const status = fault.abort.status;
    meshReplyH2(stream, status, 'fault-injected', `fault injected by route ${upstream.route!.name}: abort with ${status}`, grpc, grpc ? { 'grpc-status': String(grpcStatusForHttp(status)) } : {});
    return;
  }
  // The total timeout covers everything from here: an injected delay, the endpoint, the answer.
  let expired = false;
  const deadline = rule?.timeoutMs
    ? setTimeout(() => {
        expired = true;
        meshReplyH2(stream, 504, 'timeout', `no answer from ${upstream.key} within the route's timeout of ${rule.timeoutMs} ms`, grpc);
      }, rule.timeoutMs)
    : null;
  try {
    if (fault?.delay && Math.random() * 100 < fault.delay.percent) {
      await new Promise((r) => setTimeout(r, fault.delay!.fixedMs));
      if (expired || stream.destroyed) return;
    }
    // maxPendingRequests counts open streams too (as Istio's http2MaxRequests): a stream is a request in flight.
    if (!call.state.enter(upstream)) {
      meshReplyH2(stream, 503, 'overflow', `${upstream.key} has ${upstream.trafficPolicy!.connectionPool.maxPendingRequests} requests pending, its limit; try again later`, grpc);
      return;
    }
    try {
      const pool = upstream.subsets.get(subset ?? '');
      const endpoints = pool?.endpoints ?? [];
      const open = call.state.available(upstream, endpoints);
      if (open.length === 0) {
        const none = endpoints.length === 0;
        meshReplyH2(stream, 503, none ? 'no-healthy-upstream' : 'circuit-open', none ? `no endpoint of ${upstream.key} is available` : `every endpoint of ${upstream.key} has its circuit breaker open`, grpc);
        return;
      }
      const health = upstream.trafficPolicy?.loadBalancer.type === 'round-robin' ? pool!.balancer.pick(open)! : pickP2c(open)!;
      call.obs.set({ subset, endpoint: health.address, breaker: health.state });
      await health.run(() => forwardH2(stream, call.peers.h2Session(upstream, health.address), call.headers));
    } finally {
      call.state.leave(upstream);
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'WEFT_PEER_IDENTITY') meshReplyH2(stream, 502, 'peer-identity-mismatch', e.message, grpc);
    else meshReplyH2(stream, 503, e.code === 'EOPENBREAKER' ? 'circuit-open' : 'upstream-connect-failure', `upstream ${upstream.key} failed: ${e.message}`, grpc);
  } finally {
    if (deadline) clearTimeout(deadline);
  }
}
