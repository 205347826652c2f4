// catalog: the shop's items with their prices, in two versions (VERSION=v1 or v2; v2 has a new item with a
// "new!" badge). Plain Node with no mesh code: it asks prices over gRPC through its sidecar's local port for
// prices (WEFT_UPSTREAM_PRICES_PORT), and learns who called it from the x-weft-peer-identity header.
//
//   GET /items            {service, version, calledBy, items: [{sku, name, cents, currency, badge?}], prices: {calledBy}}
//   GET /fail?on=1|0      make /items answer 503 (or stop), for the circuit breaker demo; ?rate=0.3 fails 30%
//   FAIL_RATE=0.3         the same from the start

import http from 'node:http';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PORT = Number(process.env.PORT ?? 8081);
const VERSION = process.env.VERSION ?? process.argv[2] ?? 'v1';
// Through the sidecar's port for prices when run under `weft sidecar`; straight to prices otherwise.
const PRICES = `127.0.0.1:${process.env.WEFT_UPSTREAM_PRICES_PORT ?? 8082}`;
const PROTO = fileURLToPath(new URL('../prices.proto', import.meta.url));

interface Item {
  sku: string;
  name: string;
  badge?: string;
}

const ITEMS: Item[] = [
  { sku: 'tea', name: 'Green tea' },
  { sku: 'coffee', name: 'Coffee beans' },
  { sku: 'cocoa', name: 'Cocoa' },
  ...(VERSION === 'v2' ? [{ sku: 'matcha', name: 'Matcha', badge: 'new!' }] : []),
];

interface Price {
  sku: string;
  cents: number;
  currency: string;
  caller: string;
}

type GetPrice = (req: { sku: string }, options: grpc.CallOptions, done: (err: grpc.ServiceError | null, price: Price) => void) => void;

const proto = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })).shop as grpc.GrpcObject;
const Prices = proto.Prices as grpc.ServiceClientConstructor;
const prices = new Prices(PRICES, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Get: GetPrice };

function price(sku: string): Promise<Price> {
  return new Promise((resolve, reject) => prices.Get({ sku }, { deadline: Date.now() + 2000 }, (err, p) => (err ? reject(err) : resolve(p))));
}

let failRate = Number(process.env.FAIL_RATE ?? 0);

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body) + '\n');
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://catalog');
  if (url.pathname === '/fail') {
    const on = url.searchParams.get('on');
    const rate = url.searchParams.get('rate');
    if (rate !== null) failRate = Math.min(1, Math.max(0, Number(rate) || 0));
    else if (on !== null) failRate = on === '1' || on === 'true' ? 1 : 0;
    send(res, 200, { service: 'catalog', version: VERSION, failRate });
    return;
  }
  if (url.pathname !== '/items') {
    send(res, 404, { error: `no such page ${url.pathname}; try /items` });
    return;
  }
  const calledBy = req.headers['x-weft-peer-identity'] ?? null;
  if (failRate > 0 && Math.random() < failRate) {
    send(res, 503, { error: `catalog ${VERSION} is failing on purpose (fail rate ${failRate}); GET /fail?on=0 to stop` });
    return;
  }
  try {
    const got = await Promise.all(ITEMS.map((item) => price(item.sku)));
    send(res, 200, {
      service: 'catalog',
      version: VERSION,
      calledBy,
      items: ITEMS.map((item, i) => ({ ...item, cents: got[i]!.cents, currency: got[i]!.currency })),
      prices: { calledBy: got[0]?.caller || null },
    });
  } catch (err) {
    const e = err as grpc.ServiceError;
    send(res, 502, { error: `prices failed: ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`, version: VERSION });
  }
});

server.listen(PORT, '127.0.0.1', () => process.stdout.write(`catalog ${VERSION} listening on 127.0.0.1:${PORT}\n`));

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    prices.close();
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
