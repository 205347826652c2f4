// A rule's mirror for an outbound HTTP/1 call: a copy of the request, fire and forget, as Envoy's shadow; and the
// "-shadow" host both mirrors (this and ./h2-mirror.ts) give their copies.

import type { HttpCall } from './http-call.ts';

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
export function mirror(call: HttpCall, subset: string, sent: Buffer | null | 'stream' | undefined, timeoutMs: number): void {
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
