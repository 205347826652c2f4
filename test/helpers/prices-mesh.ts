// The gRPC tests' mesh: the prices app (grpc-js) behind its sidecar, web's sidecar with a local port for prices,
// and a grpc-js client on that port.

import type * as grpc from '@grpc/grpc-js';
import { grpcPrices, pricesClient, type App, type PricesClient } from './apps.ts';
import { startMesh, type SidecarProc, type TestMesh } from './mesh.ts';

export interface PricesMesh {
  readonly mesh: TestMesh;
  readonly prices: App;
  readonly web: SidecarProc;
  readonly client: PricesClient;
  close(): Promise<void>;
}

/** `clientOptions`: e.g. { 'grpc.enable_retries': 0 }, so that every retry seen is the sidecar's. */
export async function pricesMesh(yaml: string, clientOptions: grpc.ChannelOptions = {}): Promise<PricesMesh> {
  const prices = await grpcPrices();
  const mesh = await startMesh(yaml);
  let client: PricesClient | null = null;
  const close = async () => {
    client?.close();
    await mesh.stop();
    await prices.close();
  };
  try {
    await mesh.sidecar({ service: 'prices', appPort: prices.port });
    const web = await mesh.sidecar({ service: 'web', appPort: 1, upstreams: ['prices'] });
    client = pricesClient(web.ports.upstreams.prices!, clientOptions);
    return { mesh, prices, web, client, close };
  } catch (err) {
    await close();
    throw err;
  }
}
