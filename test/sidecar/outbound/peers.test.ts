// The outbound side's pools (sidecar/outbound/peers.ts): one per upstream and endpoint, found again by every
// request, and following each config push: the pools of an endpoint that left the config are closed, the others
// kept as they are.

import test from 'ava';
import { generateKeyPair, privateKeyToPem } from '../../../ca/keys.ts';
import type { RuntimeConfig, UpstreamRuntime } from '../../../sidecar/config/runtime.ts';
import { PeerConnector } from '../../../sidecar/outbound/peers.ts';
import { CATALOG, makeCa, WEB } from '../../helpers/ca.ts';
import { csrFor } from '../../helpers/stub-sidecar.ts';

async function connector(): Promise<PeerConnector> {
  const { ca, bundle } = await makeCa();
  const keys = generateKeyPair();
  const svid = ca.sign(await csrFor(keys), WEB, { ttlSeconds: 3600 });
  return new PeerConnector({ keyPem: privateKeyToPem(keys.privateKey), chainPem: svid.chainPem, bundlePem: bundle.toPem() });
}

const upstream = (key: string, addresses: string[]) =>
  ({ key, endpoints: addresses.map((address) => ({ address })), expectedIdentities: new Set([CATALOG]), trafficPolicy: null }) as unknown as UpstreamRuntime;
const configOf = (...upstreams: UpstreamRuntime[]) => ({ upstreams: new Map(upstreams.map((u) => [u.key, u])) }) as unknown as RuntimeConfig;

test('one pool per upstream and endpoint; an endpoint that leaves the config has its pools closed, the rest are kept', async (t) => {
  const peers = await connector();
  t.teardown(() => peers.close());
  const catalog = upstream('catalog.default', ['127.0.0.1:1', '127.0.0.1:2']);
  const prices = upstream('prices.default', ['127.0.0.1:1']);
  const a = peers.h1Pool(catalog, '127.0.0.1:1');
  const b = peers.h1Pool(catalog, '127.0.0.1:2');
  const c = peers.h1Pool(prices, '127.0.0.1:1');
  const h2 = peers.h2Pool(catalog, '127.0.0.1:1');
  t.is(peers.h1Pool(catalog, '127.0.0.1:1'), a);
  t.is(peers.h2Pool(catalog, '127.0.0.1:1'), h2);
  t.not(a, b);
  t.not(a, c); // the same address for another service is another pool
  peers.applyConfig(configOf(catalog, prices));
  t.is(peers.h1Pool(catalog, '127.0.0.1:1'), a, 'an unchanged config keeps every pool');

  peers.applyConfig(configOf(upstream('catalog.default', ['127.0.0.1:2']), prices));
  t.is(peers.h1Pool(catalog, '127.0.0.1:2'), b);
  t.is(peers.h1Pool(prices, '127.0.0.1:1'), c);
  const a2 = peers.h1Pool(catalog, '127.0.0.1:1');
  t.not(a2, a, 'the pool of an endpoint no longer in the config is let go');
  t.not(peers.h2Pool(catalog, '127.0.0.1:1'), h2);
  // The one let go is closed: a request on it fails at once instead of waiting for a connection.
  const error = await new Promise<Error & { code?: string }>((resolve) =>
    a.dispatch({ method: 'GET', path: '/', headers: { host: 'catalog' }, body: null }, { onHeaders() {}, onData: () => true, onComplete() {}, onError: resolve }),
  );
  t.is(error.code, 'WEFT_POOL_CLOSED');

  peers.applyConfig(configOf(prices));
  t.not(peers.h1Pool(catalog, '127.0.0.1:2'), b, 'a service gone from the config takes its pools with it');
  t.is(peers.h1Pool(prices, '127.0.0.1:1'), c);
});
