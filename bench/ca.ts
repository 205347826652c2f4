// bench:ca — CA signatures per second on one core: CSR parse + self-signature verify + sign + PEM encode.
//
// Signing is synchronous (node:crypto), so one Node thread is one core. CSRs come from 256 distinct keys,
// made before the clock starts. Writes bench/results/ca.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { CertificateAuthority } from '../ca/authority.ts';
import { createIntermediate, createRoot } from '../ca/hierarchy.ts';
import { generateKeyPair } from '../ca/keys.ts';
import { TrustBundle } from '../ca/trust-bundle.ts';
import { EC_P256, x509 } from '../ca/x509.ts';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const td = 'bench.example';
const now = Date.now();
const root = await createRoot({ trustDomain: td, nowMs: now });
const intermediate = await createIntermediate(root, { trustDomain: td, nowMs: now });
const ca = new CertificateAuthority({ trustDomain: td, issuer: intermediate, bundle: new TrustBundle(td, [root.certificate]) });
const csrs: string[] = [];
for (let i = 0; i < 256; i++) {
  csrs.push((await x509.Pkcs10CertificateRequestGenerator.create({ keys: generateKeyPair(), signingAlgorithm: EC_P256 })).toString('pem'));
}
const ids = Array.from({ length: 256 }, (_, i) => `spiffe://${td}/ns/ns${i % 8}/sa/svc${i}`);

function loop(ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++, n++) ca.sign(csrs[n % 256]!, ids[n % 256]!);
  }
  return n;
}

loop(1000); // warm up the JIT
const t0 = performance.now();
const count = loop(seconds * 1000);
const elapsed = (performance.now() - t0) / 1000;
const signsPerSecond = Math.round(count / elapsed);

const result = {
  signsPerSecond,
  goal: 2000,
  microsecondsPerSign: Math.round((elapsed / count) * 1e6),
  signatures: count,
  seconds: Number(elapsed.toFixed(2)),
  node: process.version,
  cpu: cpus()[0]?.model ?? 'unknown',
  date: new Date().toISOString(),
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/ca.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
console.log(`CA signatures per second (one core): ${signsPerSecond} (goal ≥ 2,000; ${result.microsecondsPerSign} µs each)`);
console.log('written bench/results/ca.json');
