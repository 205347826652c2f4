// cli/listen-error.ts through the real CLI: a control plane, sidecar or 'weft traces' given a port that is taken
// says which address and which flag, with an error code, instead of node's stack.

import test from 'ava';
import net from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { tempDir } from '../helpers/ca.ts';
import { weft } from '../helpers/cli.ts';

async function heldPort(): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => s.destroy()).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

test('weft control-plane on a taken --listen port names the address and the flag, and exits 1', async (t) => {
  const held = await heldPort();
  t.teardown(() => held.close());
  const state = tempDir();
  const r = await weft(['control-plane', '--config', 'examples/shop/mesh.yaml', '--state', state, '--listen', `127.0.0.1:${held.port}`]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`^weft: cannot listen on 127\\.0\\.0\\.1:${held.port} \\(--listen\\): the address is already in use \\(EADDRINUSE\\); is a control plane with another --state \\(or weft up\\) running there\\? Pass another --listen HOST:PORT, or port 0 for a free one \\(its address is then in ${state}/control-plane\\.json\\) \\[WEFT_LISTEN_FAILED\\]$`, 'm'));
  t.notRegex(r.stderr, /unexpected error|    at /);
});

test('weft sidecar on a taken --admin-port names the address and the flag, and exits 1', async (t) => {
  const held = await heldPort();
  t.teardown(() => held.close());
  const dir = tempDir();
  t.is((await weft(['ca', 'init', '--trust-domain', 'shop.example', '--dir', join(dir, 'ca')])).code, 0);
  // The admin port is bound before anything else, so no control plane is needed to get this far.
  const r = await weft(['sidecar', '--control-plane', 'https://127.0.0.1:1', '--trust-bundle', join(dir, 'ca', 'bundle.pem'), '--token', 'x', '--service', 'web', '--app-port', '1', '--admin-port', String(held.port)]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`^weft: cannot listen on 127\\.0\\.0\\.1:${held.port} \\(--admin-port\\): the address is already in use \\(EADDRINUSE\\); stop what listens there, or pick another port \\(0 picks a free one\\) \\[WEFT_LISTEN_FAILED\\]$`, 'm'));
  t.notRegex(r.stderr, /unexpected error|    at /);
});

test('weft traces on a taken --listen port names the address and the flag, and exits 1', async (t) => {
  const held = await heldPort();
  t.teardown(() => held.close());
  const r = await weft(['traces', '--listen', `127.0.0.1:${held.port}`]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`^weft: cannot listen on 127\\.0\\.0\\.1:${held.port} \\(--listen\\): the address is already in use \\(EADDRINUSE\\); is another 'weft traces' or a collector listening there\\? .* \\[WEFT_LISTEN_FAILED\\]$`, 'm'));
  t.notRegex(r.stderr, /unexpected error|    at /);
});
