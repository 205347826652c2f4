// Test fixtures for the CA: a fresh hierarchy, CSRs with chosen names, temp dirs, and running real tools.

import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateAuthority } from '../../ca/authority.ts';
import { createIntermediate, createRoot, type CaCertificate } from '../../ca/hierarchy.ts';
import { generateKeyPair, privateKeyToPem, type KeyPair } from '../../ca/keys.ts';
import { CaStore } from '../../ca/store.ts';
import { TrustBundle } from '../../ca/trust-bundle.ts';
import { EC_P256, x509 } from '../../ca/x509.ts';

export const TD = 'shop.example';
export const WEB = `spiffe://${TD}/ns/default/sa/web`;
export const CATALOG = `spiffe://${TD}/ns/default/sa/catalog`;

export interface TestCa {
  readonly root: CaCertificate;
  readonly intermediate: CaCertificate;
  readonly bundle: TrustBundle;
  readonly ca: CertificateAuthority;
}

export async function makeCa(opts: { nowMs?: number; clock?: () => number; intermediateTtlSeconds?: number; trustDomain?: string } = {}): Promise<TestCa> {
  const trustDomain = opts.trustDomain ?? TD;
  const nowMs = opts.nowMs ?? Date.now();
  const root = await createRoot({ trustDomain, nowMs });
  const intermediate = await createIntermediate(root, { trustDomain, nowMs, intermediateTtlSeconds: opts.intermediateTtlSeconds });
  const bundle = new TrustBundle(trustDomain, [root.certificate]);
  const ca = new CertificateAuthority({ trustDomain, issuer: intermediate, bundle, clock: opts.clock });
  return { root, intermediate, bundle, ca };
}

export async function makeCsr(opts: { keys?: KeyPair; sans?: { type: 'url' | 'dns'; value: string }[]; cn?: string } = {}): Promise<{ pem: string; der: Buffer; keys: KeyPair }> {
  const keys = opts.keys ?? generateKeyPair();
  const extensions = opts.sans ? [new x509.SubjectAlternativeNameExtension(opts.sans)] : [];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: EC_P256, name: opts.cn ? `CN=${opts.cn}` : undefined, extensions });
  return { pem: csr.toString('pem'), der: Buffer.from(csr.rawData), keys };
}

export function tempDir(prefix = 'weft-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeTemp(dir: string, name: string, data: string): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

const execFileP = promisify(execFile);

/** Runs a real program; resolves with its exit code and output instead of throwing on a non-zero exit. */
export async function run(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(cmd, [...args], { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** A certificate for `identity` straight from the CA in a mesh's state dir: what a stolen or leaked SVID would be. */
export async function svidFromCa(state: string, identity: string): Promise<{ key: string; cert: string; ca: string; serial: string }> {
  const store = CaStore.open(join(state, 'ca'));
  const keys = generateKeyPair();
  const svid = store.authority().sign((await makeCsr({ keys })).pem, identity);
  return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, ca: store.bundle.toPem(), serial: svid.serial };
}
