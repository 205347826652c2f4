// Claims the planned ports on loopback, swapping any that are taken for free ones (and saying which).

import net from 'node:net';

export interface MovedPort {
  readonly slot: string;
  readonly wanted: number;
  readonly got: number;
}

function listen(port: number, host: string): Promise<net.Server | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(null));
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

/**
 * Binds every wanted port at once (so a fallback can never land on a port planned for another slot), takes a free
 * port for each one that fails, then releases them all for the children to bind. Another program could take one
 * in between; the child then fails to start and `weft up` names it.
 */
export async function reservePorts(wanted: ReadonlyMap<string, number>, host = '127.0.0.1'): Promise<{ ports: Map<string, number>; moved: MovedPort[] }> {
  const held: net.Server[] = [];
  const ports = new Map<string, number>();
  const moved: MovedPort[] = [];
  try {
    const missing: string[] = [];
    for (const [slot, port] of wanted) {
      const server = await listen(port, host);
      if (server) {
        held.push(server);
        ports.set(slot, port);
      } else {
        missing.push(slot);
      }
    }
    for (const slot of missing) {
      const server = await listen(0, host);
      if (!server) throw new Error(`no free port on ${host} for ${slot}`);
      held.push(server);
      const got = (server.address() as net.AddressInfo).port;
      ports.set(slot, got);
      moved.push({ slot, wanted: wanted.get(slot)!, got });
    }
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
  // Keep the planned order.
  return { ports: new Map([...wanted.keys()].map((slot) => [slot, ports.get(slot)!])), moved };
}
