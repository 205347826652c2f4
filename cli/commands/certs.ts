// weft certs inspect: what a certificate file says (identity, serial, validity, chain) and whether it verifies.

import { readFileSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import { WeftError } from '../../errors.ts';
import { oneLineName, parseCertificates } from '../../ca/pem.ts';
import { spiffeIdOfCertificate } from '../../ca/svid.ts';
import { TrustBundle } from '../../ca/trust-bundle.ts';
import { optional, parse } from '../args.ts';
import type { Command } from '../command.ts';

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new WeftError('WEFT_CLI_USAGE', `${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { path });
  }
}

function summary(cert: X509Certificate) {
  let identity: string | null = null;
  try {
    identity = spiffeIdOfCertificate(cert).uri;
  } catch {
    identity = null;
  }
  return {
    subject: oneLineName(cert.subject),
    issuer: oneLineName(cert.issuer),
    identity,
    serial: cert.serialNumber,
    notBefore: cert.validFromDate.toISOString(),
    notAfter: cert.validToDate.toISOString(),
    ca: cert.ca,
    fingerprint: cert.fingerprint256,
  };
}

export const certsInspect: Command = {
  name: 'certs inspect',
  help: `Usage: weft certs inspect FILE [--bundle BUNDLE.pem] [--at ISO-TIME]

Prints every certificate in FILE (leaf first): its SPIFFE ID, serial, validity and issuer. With --bundle, verifies
the chain against those roots (at --at, default now) and exits 1 if it does not verify.

Example: weft certs inspect ./admin/cert.pem --bundle .weft/ca/bundle.pem`,
  run(argv, out) {
    const { values, positionals } = parse('certs inspect', argv, { bundle: { type: 'string' }, at: { type: 'string' } }, true);
    if (positionals.length !== 1) throw new WeftError('WEFT_CLI_USAGE', 'weft certs inspect: give exactly one certificate file');
    const file = positionals[0]!;
    const certs = parseCertificates(read(file), file);
    const bundleFile = optional(values, 'bundle');
    const at = optional(values, 'at');
    const nowMs = at === undefined ? Date.now() : Date.parse(at);
    if (Number.isNaN(nowMs)) throw new WeftError('WEFT_CLI_USAGE', `--at ${JSON.stringify(at)} is not an ISO time such as 2026-01-31T12:00:00Z`);
    let verification: { verified: boolean; reason?: string; code?: string; root?: string } | undefined;
    if (bundleFile) {
      const leafId = certs[0] && summary(certs[0]).identity;
      const trustDomain = leafId ? new URL(leafId).host : '';
      try {
        const v = TrustBundle.fromPem(trustDomain, read(bundleFile), bundleFile).verify(certs, nowMs);
        verification = { verified: true, root: oneLineName(v.path.at(-1)!.subject) };
      } catch (err) {
        if (!(err instanceof WeftError) || err.code === 'WEFT_CA_PEM_MALFORMED') throw err;
        verification = { verified: false, reason: err.message, code: err.code };
      }
    }
    const chain = certs.map(summary);
    out.result({ file, chain, verification }, () => {
      const lines: string[] = [];
      for (const [i, c] of chain.entries()) {
        lines.push(`${i === 0 ? 'certificate' : `issuer #${i}`}: ${c.identity ?? c.subject}${c.ca ? ' (CA)' : ''}`);
        if (c.identity && c.subject) lines.push(`  subject    ${c.subject}`);
        lines.push(`  serial     ${c.serial}`, `  valid      ${c.notBefore} to ${c.notAfter}`, `  issued by  ${c.issuer}`);
      }
      if (verification) lines.push(verification.verified ? `verifies against ${bundleFile}: yes, up to ${verification.root}` : `verifies against ${bundleFile}: NO: ${verification.reason}`);
      return lines.join('\n');
    });
    return verification && !verification.verified ? 1 : 0;
  },
};
