// A rule's mirror for an outbound HTTP/2 (gRPC) call: a copy of the request, fire and forget, as Envoy's shadow.

import type { H2Call } from './h2-call.ts';
import type { ReplayableBody } from '../http/replayable-body.ts';
import { cancelStream } from '../http/h2-cancel.ts';
import { shadowHost } from './h1-mirror.ts';

/**
 * A copy of the call to the mirror subset, its :authority marked "-shadow", once the call is over; its answer is
 * read and thrown away; it is given up after `timeoutMs`. Only a call whose request stream had ended, within
 * MAX_RETRY_BODY, is copied.
 */
export function mirrorH2(call: H2Call, subset: string, body: ReplayableBody, timeoutMs: number): void {
  if (!body.replayable) return;
  const pool = call.upstream.subsets.get(subset);
  const endpoint = pool?.balancer.pick(pool.endpoints);
  if (!endpoint) return;
  const authority = call.headers[':authority'];
  const headers = typeof authority === 'string' ? { ...call.headers, ':authority': shadowHost(authority) } : call.headers;
  try {
    const copy = call.peers.h2Pool(call.upstream, endpoint.address).request(headers, { endStream: false });
    copy.on('error', () => {});
    // A copy that hangs is given up, so that copies never pile up on the mirror's session.
    copy.setTimeout(timeoutMs, () => cancelStream(copy));
    copy.resume();
    body.copyTo(copy);
  } catch {
    // no session to the mirror (or no room on it): the copy is skipped, as any failure of a mirror is
  }
}
