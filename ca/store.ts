// The CA's state directory: authorities (root and intermediate, keys 0600), the trust bundle and the journal.
//
//   DIR/ca.json                          trust domain and authorities with their rotation state (the commit point)
//   DIR/authorities/<id>/root.crt        the root (root.key beside it unless the CA is plugged in)
//   DIR/authorities/<id>/intermediate.crt  the signing certificate, then any certificates up to the root
//   DIR/authorities/<id>/intermediate.key
//   DIR/bundle.pem                       roots of every authority not dropped, derived from ca.json
//   DIR/journal.jsonl                    one line per issued certificate
//
// Every change writes new files first and replaces ca.json last, atomically, so a failure leaves the old state.
// Loading only reads: a corrupt or mismatched file is reported by name and nothing on disk changes.

import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { randomBytes, type X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { WeftError } from '../errors.ts';
import { writeFileAtomic } from './atomic-file.ts';
import { CertificateAuthority, checkIssuerChains, type IssuanceRecord } from './authority.ts';
import { createIntermediate, createRoot, type CaCertificate } from './hierarchy.ts';
import { IssuanceJournal } from './journal.ts';
import { keyObjectOf, privateKeyFromPem, privateKeyToPem, type KeyPair } from './keys.ts';
import type { IssuerExpiryPolicy } from './lifetime.ts';
import { oneLineName, parseCertificates, toPem } from './pem.ts';
import { activate, activeAuthority, checkCanPrepare, finish, type AuthorityRecord, type AuthorityState } from './rotation.ts';
import { parseTrustDomain } from './spiffe-id.ts';
import { TrustBundle } from './trust-bundle.ts';

const STATE_FILE = 'ca.json';
const STATES: readonly AuthorityState[] = ['prepared', 'active', 'retired', 'dropped'];

interface CaState {
  readonly version: 1;
  readonly trustDomain: string;
  readonly authorities: readonly AuthorityRecord[];
}

/** Material for a plug-in CA: an intermediate signed by the operator's offline root. */
export interface PlugInMaterial {
  /** the signing certificate first, then any intermediates up to (not including) the root */
  readonly certPem: string;
  readonly keyPem: string;
  readonly rootPem: string;
  /** file names, for errors */
  readonly where?: { cert: string; key: string; root: string };
}

export interface LoadedAuthority {
  readonly record: AuthorityRecord;
  readonly root: X509Certificate;
  /** absent for a dropped authority */
  readonly issuer?: CaCertificate;
  readonly issuerChain: readonly X509Certificate[];
}

export class CaStore {
  readonly dir: string;
  readonly trustDomain: string;
  readonly authorities: readonly LoadedAuthority[];
  readonly journal: IssuanceJournal;

  private constructor(dir: string, trustDomain: string, authorities: LoadedAuthority[]) {
    this.dir = dir;
    this.trustDomain = trustDomain;
    this.authorities = authorities;
    this.journal = new IssuanceJournal(join(dir, 'journal.jsonl'));
  }

  get bundle(): TrustBundle {
    return new TrustBundle(this.trustDomain, this.authorities.filter((a) => a.record.state !== 'dropped').map((a) => a.root));
  }

  get active(): LoadedAuthority {
    const record = activeAuthority(this.authorities.map((a) => a.record));
    return this.authorities.find((a) => a.record === record)!;
  }

  /** A CA that signs with the active intermediate and journals every issuance (unless `onIssue` says otherwise). */
  authority(opts: { clock?: () => number; onIssuerExpiry?: IssuerExpiryPolicy; onIssue?: (record: IssuanceRecord) => void } = {}): CertificateAuthority {
    const active = this.active;
    return new CertificateAuthority({
      trustDomain: this.trustDomain,
      issuer: active.issuer!,
      issuerChain: active.issuerChain,
      bundle: this.bundle,
      onIssue: (r) => this.journal.append(r),
      ...opts,
    });
  }

  static exists(dir: string): boolean {
    return existsSync(join(dir, STATE_FILE));
  }

  /** Creates a CA in `dir`: a fresh root and intermediate, or the operator's plug-in intermediate. */
  static async init(dir: string, opts: { trustDomain: string; nowMs?: number; force?: boolean; plugIn?: PlugInMaterial }): Promise<CaStore> {
    const trustDomain = parseTrustDomain(opts.trustDomain);
    if (CaStore.exists(dir) && !opts.force) {
      throw new WeftError('WEFT_CA_STORE_EXISTS', `${join(dir, STATE_FILE)} already holds a CA; pass --force to replace it (every certificate it issued stops verifying), or use 'weft ca rotate'`, { dir });
    }
    const previous = CaStore.exists(dir) ? readState(dir) : null;
    const nowMs = opts.nowMs ?? Date.now();
    const record: AuthorityRecord = { id: newId(), state: 'active', pluggedIn: !!opts.plugIn, createdAt: new Date(nowMs).toISOString(), activatedAt: new Date(nowMs).toISOString() };
    await writeAuthority(dir, record, trustDomain, nowMs, opts.plugIn);
    commit(dir, { version: 1, trustDomain, authorities: [record] });
    for (const old of previous?.authorities ?? []) rmSync(join(dir, 'authorities', old.id), { recursive: true, force: true });
    return CaStore.open(dir);
  }

  /** Loads and checks the whole state; throws naming the file at fault, writes nothing. */
  static open(dir: string): CaStore {
    if (!CaStore.exists(dir)) {
      throw new WeftError('WEFT_CA_STORE_MISSING', `no CA in ${dir} (${STATE_FILE} not found); create one with 'weft ca init --trust-domain DOMAIN --dir ${dir}'`, { dir });
    }
    const state = readState(dir);
    const authorities = state.authorities.map((record) => loadAuthority(dir, state.trustDomain, record));
    const store = new CaStore(dir, state.trustDomain, authorities);
    void store.active; // exactly one active, or corrupt
    return store;
  }

  /** Step 1: a new root and intermediate; the new root joins the bundle, the current intermediate still signs. */
  async prepareRotation(opts: { nowMs?: number; plugIn?: PlugInMaterial } = {}): Promise<CaStore> {
    const records = this.authorities.map((a) => a.record);
    checkCanPrepare(records);
    const nowMs = opts.nowMs ?? Date.now();
    const record: AuthorityRecord = { id: newId(), state: 'prepared', pluggedIn: !!opts.plugIn, createdAt: new Date(nowMs).toISOString() };
    await writeAuthority(this.dir, record, this.trustDomain, nowMs, opts.plugIn);
    commit(this.dir, { version: 1, trustDomain: this.trustDomain, authorities: [...records, record] });
    return CaStore.open(this.dir);
  }

  /** Step 2: the prepared intermediate signs from now on. */
  activateRotation(nowMs: number = Date.now()): CaStore {
    commit(this.dir, { version: 1, trustDomain: this.trustDomain, authorities: activate(this.authorities.map((a) => a.record), nowMs) });
    return CaStore.open(this.dir);
  }

  /** Step 3: the retired root leaves the bundle, once nothing it vouches for is still valid. */
  finishRotation(nowMs: number = Date.now()): CaStore {
    const last = (r: AuthorityRecord) => {
      const a = this.authorities.find((x) => x.record === r);
      return a?.issuer ? this.journal.lastNotAfter(a.issuer.certificate.fingerprint256) : null;
    };
    commit(this.dir, { version: 1, trustDomain: this.trustDomain, authorities: finish(this.authorities.map((a) => a.record), nowMs, last) });
    return CaStore.open(this.dir);
  }
}

function newId(): string {
  return randomBytes(4).toString('hex');
}

function authorityDir(dir: string, id: string): string {
  return join(dir, 'authorities', id);
}

function commit(dir: string, state: CaState): void {
  const roots = state.authorities.filter((a) => a.state !== 'dropped').map((a) => readFileSync(join(authorityDir(dir, a.id), 'root.crt'), 'utf8'));
  writeFileAtomic(join(dir, 'bundle.pem'), roots.join(''), 0o644);
  writeFileAtomic(join(dir, STATE_FILE), JSON.stringify(state, null, 2) + '\n', 0o644);
}

async function writeAuthority(dir: string, record: AuthorityRecord, trustDomain: string, nowMs: number, plugIn?: PlugInMaterial): Promise<void> {
  const adir = authorityDir(dir, record.id);
  let files: { name: string; data: string; mode: number }[];
  if (plugIn) {
    const checked = checkPlugIn(plugIn, trustDomain, nowMs);
    files = [
      { name: 'root.crt', data: toPem(checked.roots), mode: 0o644 },
      { name: 'intermediate.crt', data: toPem(checked.chain), mode: 0o644 },
      { name: 'intermediate.key', data: privateKeyToPem(checked.key.keys.privateKey), mode: 0o600 },
    ];
  } else {
    const root = await createRoot({ trustDomain, nowMs });
    const intermediate = await createIntermediate(root, { trustDomain, nowMs });
    files = [
      { name: 'root.crt', data: toPem([root.certificate]), mode: 0o644 },
      { name: 'root.key', data: privateKeyToPem(root.keys.privateKey), mode: 0o600 },
      { name: 'intermediate.crt', data: toPem([intermediate.certificate]), mode: 0o644 },
      { name: 'intermediate.key', data: privateKeyToPem(intermediate.keys.privateKey), mode: 0o600 },
    ];
  }
  mkdirSync(adir, { recursive: true, mode: 0o700 });
  for (const f of files) writeFileAtomic(join(adir, f.name), f.data, f.mode);
}

function checkPlugIn(p: PlugInMaterial, trustDomain: string, nowMs: number): { roots: X509Certificate[]; chain: X509Certificate[]; key: CaCertificate } {
  const where = p.where ?? { cert: 'the intermediate certificate', key: 'the intermediate key', root: 'the root certificate' };
  const chain = parseCertificates(p.certPem, where.cert);
  const roots = parseCertificates(p.rootPem, where.root);
  const keys = privateKeyFromPem(p.keyPem, where.key);
  const signing = chain[0]!;
  checkKeyMatches(signing, keys, where.cert, where.key);
  if (!signing.ca) throw new WeftError('WEFT_CA_CHAIN_INVALID', `${where.cert}: ${oneLineName(signing.subject)} is not a CA certificate (basicConstraints CA:TRUE is required)`);
  if (nowMs > signing.validToDate.getTime()) throw new WeftError('WEFT_CA_ISSUER_EXPIRED', `${where.cert}: the intermediate expired at ${signing.validToDate.toISOString()}`);
  checkIssuerChains(chain, new TrustBundle(trustDomain, roots));
  return { roots, chain, key: { certificate: signing, keys } };
}

function checkKeyMatches(cert: X509Certificate, keys: KeyPair, certFile: string, keyFile: string): void {
  const certSpki = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!certSpki.equals(keyObjectOf(keys.publicKey).export({ type: 'spki', format: 'der' }))) {
    throw new WeftError('WEFT_CA_KEY_MISMATCH', `${keyFile} is not the private key of the certificate in ${certFile}; restore the matching pair`, { cert: certFile, key: keyFile });
  }
}

function readState(dir: string): CaState {
  const path = join(dir, STATE_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new WeftError('WEFT_CA_STORE_CORRUPT', `${path}: not readable JSON (${(err as Error).message})`, { path }, { cause: err });
  }
  const s = raw as Partial<CaState>;
  const bad = (why: string) => new WeftError('WEFT_CA_STORE_CORRUPT', `${path}: ${why}`, { path });
  if (s.version !== 1) throw bad(`unsupported version ${JSON.stringify(s.version)}; this weft reads version 1`);
  if (typeof s.trustDomain !== 'string') throw bad('trustDomain is missing');
  parseTrustDomain(s.trustDomain);
  if (!Array.isArray(s.authorities) || s.authorities.length === 0) throw bad('authorities is missing or empty');
  for (const [i, a] of s.authorities.entries()) {
    if (typeof a?.id !== 'string' || !/^[0-9a-f]{8}$/.test(a.id)) throw bad(`authorities[${i}].id must be 8 hex digits`);
    if (!STATES.includes(a.state)) throw bad(`authorities[${i}].state must be one of ${STATES.join(', ')}`);
  }
  return s as CaState;
}

function checkPrivate(path: string): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new WeftError('WEFT_CA_STORE_CORRUPT', `${path} is readable by others (mode ${mode.toString(8)}); a private key must be 0600: chmod 600 ${path}`, { path });
  }
}

function loadAuthority(dir: string, trustDomain: string, record: AuthorityRecord): LoadedAuthority {
  const adir = authorityDir(dir, record.id);
  const read = (name: string): string => {
    const path = join(adir, name);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new WeftError('WEFT_CA_STORE_CORRUPT', `${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { path }, { cause: err });
    }
  };
  const rootPath = join(adir, 'root.crt');
  const root = parseCertificates(read('root.crt'), rootPath)[0]!;
  if (record.state === 'dropped') return { record, root, issuerChain: [] };
  const certPath = join(adir, 'intermediate.crt');
  const keyPath = join(adir, 'intermediate.key');
  const chain = parseCertificates(read('intermediate.crt'), certPath);
  const keyPem = read('intermediate.key');
  checkPrivate(keyPath);
  const keys = privateKeyFromPem(keyPem, keyPath);
  const signing = chain[0]!;
  checkKeyMatches(signing, keys, certPath, keyPath);
  if (!record.pluggedIn) checkPrivate(join(adir, 'root.key'));
  try {
    checkIssuerChains(chain, new TrustBundle(trustDomain, [root]));
  } catch (err) {
    throw new WeftError('WEFT_CA_STORE_CORRUPT', `${certPath}: ${(err as Error).message} (root: ${rootPath})`, { path: certPath }, { cause: err });
  }
  return { record, root, issuer: { certificate: signing, keys }, issuerChain: chain.slice(1) };
}
