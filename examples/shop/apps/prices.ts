// prices: the shop's price list as a gRPC service (unary Get). Plain grpc-js with no mesh code: its sidecar
// terminates mTLS and hands it cleartext HTTP/2, adding the caller's identity as x-weft-peer-identity metadata.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.PORT ?? 8082);
const PROTO = fileURLToPath(new URL('../prices.proto', import.meta.url));

const PRICES: Record<string, number> = { tea: 450, coffee: 520, cocoa: 390, matcha: 780 };

interface PriceRequest {
  sku: string;
}

const proto = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true })).shop as grpc.GrpcObject;
const service = (proto.Prices as unknown as { service: grpc.ServiceDefinition }).service;

const server = new grpc.Server();
server.addService(service, {
  Get(call: grpc.ServerUnaryCall<PriceRequest, unknown>, done: grpc.sendUnaryData<unknown>) {
    const cents = PRICES[call.request.sku];
    if (cents === undefined) {
      done({ code: grpc.status.NOT_FOUND, details: `no price for ${JSON.stringify(call.request.sku)}` });
      return;
    }
    const caller = String(call.metadata.get('x-weft-peer-identity')[0] ?? '');
    done(null, { sku: call.request.sku, cents, currency: 'EUR', caller });
  },
});

server.bindAsync(`127.0.0.1:${PORT}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`prices: cannot listen on 127.0.0.1:${PORT}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`prices listening on 127.0.0.1:${port} (gRPC)\n`);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    setTimeout(() => server.forceShutdown(), 2000).unref();
    server.tryShutdown(() => process.exit(0));
  });
}
