// weft ca: create the certificate authority, rotate its root, and issue a certificate by hand.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../../errors.ts';
import { writeFileAtomic } from '../../ca/atomic-file.ts';
import { generateKeyPair, privateKeyToPem } from '../../ca/keys.ts';
import { dropAllowedAt } from '../../ca/rotation.ts';
import { oneLineName } from '../../ca/pem.ts';
import { CaStore, type PlugInMaterial } from '../../ca/store.ts';
import { EC_P256, x509 } from '../../ca/x509.ts';
import { optional, parse, parseDuration, required, type Parsed } from '../args.ts';
import { DEFAULT_CA_DIR, type Command } from '../command.ts';

const PLUG_IN_FLAGS = {
  'plugin-cert': { type: 'string' },
  'plugin-key': { type: 'string' },
  'plugin-root': { type: 'string' },
} as const;

function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new WeftError('WEFT_CLI_USAGE', `--${flag} ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { flag, path });
  }
}

function plugInFrom(values: Parsed['values']): PlugInMaterial | undefined {
  const given = ['plugin-cert', 'plugin-key', 'plugin-root'].filter((f) => values[f] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length !== 3) throw new WeftError('WEFT_CLI_USAGE', 'a plug-in CA needs all of --plugin-cert, --plugin-key and --plugin-root', { given });
  const [cert, key, root] = [values['plugin-cert'], values['plugin-key'], values['plugin-root']] as string[];
  return {
    certPem: readFlagFile('plugin-cert', cert!),
    keyPem: readFlagFile('plugin-key', key!),
    rootPem: readFlagFile('plugin-root', root!),
    where: { cert: cert!, key: key!, root: root! },
  };
}

function describe(store: CaStore): object {
  return {
    dir: store.dir,
    trustDomain: store.trustDomain,
    bundle: join(store.dir, 'bundle.pem'),
    authorities: store.authorities.map((a) => ({
      ...a.record,
      root: { subject: oneLineName(a.root.subject), fingerprint: a.root.fingerprint256, notAfter: a.root.validToDate.toISOString() },
      intermediate: a.issuer && { subject: oneLineName(a.issuer.certificate.subject), notAfter: a.issuer.certificate.validToDate.toISOString() },
    })),
  };
}

function describeText(store: CaStore): string {
  const lines = [`CA ${store.dir} for trust domain ${store.trustDomain}`, `trust bundle: ${join(store.dir, 'bundle.pem')} (${store.bundle.roots.length} root(s))`];
  for (const a of store.authorities) {
    lines.push(`  authority ${a.record.id}  ${a.record.state.padEnd(8)} ${a.record.pluggedIn ? 'plug-in ' : ''}root ${a.root.subject.split('\n').pop()} (until ${a.root.validToDate.toISOString()})`);
    if (a.issuer) lines.push(`    signs with ${a.issuer.certificate.subject.split('\n').pop()} (until ${a.issuer.certificate.validToDate.toISOString()})`);
  }
  return lines.join('\n');
}

export const caInit: Command = {
  name: 'ca init',
  help: `Usage: weft ca init --trust-domain DOMAIN [--dir DIR] [--force]
                    [--plugin-cert FILE --plugin-key FILE --plugin-root FILE]

Creates a CA in DIR (default ${DEFAULT_CA_DIR}): an ECDSA P-256 root and an intermediate that signs workload
certificates. With --plugin-*, the intermediate is yours, signed by your offline root; its key is stored 0600 and
the root's key never comes here. Refuses to replace an existing CA unless --force is given.

Example: weft ca init --trust-domain shop.example --dir .weft/ca`,
  async run(argv, out) {
    const { values } = parse('ca init', argv, { 'trust-domain': { type: 'string' }, dir: { type: 'string' }, force: { type: 'boolean' }, ...PLUG_IN_FLAGS });
    const dir = optional(values, 'dir') ?? DEFAULT_CA_DIR;
    const store = await CaStore.init(dir, { trustDomain: required('ca init', values, 'trust-domain'), force: values.force === true, plugIn: plugInFrom(values) });
    out.result(describe(store), () => `created ${describeText(store)}`);
  },
};

export const caRotate: Command = {
  name: 'ca rotate',
  help: `Usage: weft ca rotate prepare|activate|finish|status [--dir DIR] [--plugin-cert F --plugin-key F --plugin-root F]

Rotates the CA's root with no failed handshake, in three steps:
  prepare   make a new root and intermediate (or take your plug-in ones); the new root joins the trust bundle,
            the current intermediate still signs. Wait for the bundle to reach every workload.
  activate  the new intermediate signs from now on; the old root stays in the bundle.
  finish    drop the old root, allowed once every certificate the old intermediate signed has expired.
  status    show the authorities and what step comes next.`,
  async run(argv, out) {
    const { values, positionals } = parse('ca rotate', argv, { dir: { type: 'string' }, ...PLUG_IN_FLAGS }, true);
    const step = positionals[0];
    if (positionals.length !== 1 || !['prepare', 'activate', 'finish', 'status'].includes(step!)) {
      throw new WeftError('WEFT_CLI_USAGE', `weft ca rotate: name one step: prepare, activate, finish or status (got ${positionals.join(' ') || 'none'})`);
    }
    let store = CaStore.open(optional(values, 'dir') ?? DEFAULT_CA_DIR);
    if (step === 'prepare') store = await store.prepareRotation({ plugIn: plugInFrom(values) });
    else if (step === 'activate') store = store.activateRotation();
    else if (step === 'finish') store = store.finishRotation();
    const next = nextStep(store);
    out.result({ ...describe(store), next }, () => `${describeText(store)}\nnext: ${next}`);
  },
};

function nextStep(store: CaStore): string {
  const states = store.authorities.map((a) => a.record.state);
  if (states.includes('prepared')) return "push the new bundle to every workload, then 'weft ca rotate activate'";
  const retired = store.authorities.find((a) => a.record.state === 'retired');
  if (retired) {
    const at = dropAllowedAt(retired.record, retired.issuer ? store.journal.lastNotAfter(retired.issuer.certificate.fingerprint256) : null);
    return `'weft ca rotate finish' at or after ${at.toISOString()}`;
  }
  return "nothing pending; 'weft ca rotate prepare' starts a rotation";
}

export const caIssue: Command = {
  name: 'ca issue',
  help: `Usage: weft ca issue --id SPIFFE_ID --out DIR [--csr FILE] [--ttl 1h] [--dir CA_DIR]

Issues an X.509-SVID for SPIFFE_ID from the CA in CA_DIR (default ${DEFAULT_CA_DIR}). Without --csr a fresh
P-256 key is made and written to DIR/key.pem (0600); with --csr that request's key is used and must not ask for
another name. Writes DIR/cert.pem (certificate then intermediates) and DIR/bundle.pem (trust bundle).

Example: weft ca issue --id spiffe://shop.example/ns/ops/sa/admin --out ./admin`,
  async run(argv, out) {
    const { values } = parse('ca issue', argv, { id: { type: 'string' }, out: { type: 'string' }, csr: { type: 'string' }, ttl: { type: 'string' }, dir: { type: 'string' } });
    const id = required('ca issue', values, 'id');
    const outDir = required('ca issue', values, 'out');
    const ttl = values.ttl === undefined ? undefined : parseDuration('ttl', values.ttl as string);
    const ca = CaStore.open(optional(values, 'dir') ?? DEFAULT_CA_DIR).authority();
    const csrFile = optional(values, 'csr');
    let keyPem: string | undefined;
    let csrPem: string;
    if (csrFile) {
      csrPem = readFlagFile('csr', csrFile);
    } else {
      const keys = generateKeyPair();
      keyPem = privateKeyToPem(keys.privateKey);
      csrPem = (await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: EC_P256 })).toString('pem');
    }
    const svid = ca.sign(csrPem, id, { ttlSeconds: ttl });
    mkdirSync(outDir, { recursive: true, mode: 0o700 });
    if (keyPem) writeFileAtomic(join(outDir, 'key.pem'), keyPem, 0o600);
    writeFileSync(join(outDir, 'cert.pem'), svid.chainPem);
    writeFileSync(join(outDir, 'bundle.pem'), svid.bundlePem);
    const data = { identity: svid.spiffeId.uri, serial: svid.serial, notBefore: svid.notBefore.toISOString(), notAfter: svid.notAfter.toISOString(), clipped: svid.clipped, out: outDir };
    out.result(data, () => [
      `issued ${svid.spiffeId.uri}`,
      `  serial     ${svid.serial}`,
      `  valid      ${data.notBefore} to ${data.notAfter}${svid.clipped ? ` (${svid.clipped.reason})` : ''}`,
      `  written    ${join(outDir, 'cert.pem')}, ${join(outDir, 'bundle.pem')}${keyPem ? `, ${join(outDir, 'key.pem')} (0600)` : ''}`,
    ].join('\n'));
  },
};
