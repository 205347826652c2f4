// The control plane's own certificate: issued at start, renewed at half its life; open connections keep the old one.

import type { CertificateAuthority } from '../ca/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../ca/keys.ts';
import { EC_P256, x509 } from '../ca/x509.ts';

const SVID_TTL_S = 3600;

/** What the listener's TLS context is made of. */
export interface ServerCredentials {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

export class OwnSvid {
  readonly #identity: string;
  readonly #authority: () => CertificateAuthority;
  readonly #install: (own: ServerCredentials) => void;
  readonly #clock: () => number;
  readonly #log: (event: Record<string, unknown>) => void;
  #timer: NodeJS.Timeout | null = null;

  /** `authority`: the CA signing now (it changes with a rotation); `install`: puts a new certificate on the listener. */
  constructor(opts: { identity: string; authority: () => CertificateAuthority; install: (own: ServerCredentials) => void; clock: () => number; log: (event: Record<string, unknown>) => void }) {
    this.#identity = opts.identity;
    this.#authority = opts.authority;
    this.#install = opts.install;
    this.#clock = opts.clock;
    this.#log = opts.log;
  }

  /** A new key and certificate, signed by `ca` (default: the one signing now). */
  async issue(ca: CertificateAuthority = this.#authority()): Promise<ServerCredentials & { notAfter: number }> {
    const keys = generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: EC_P256 });
    const svid = ca.sign(csr.toString('pem'), this.#identity, { ttlSeconds: SVID_TTL_S });
    return { key: privateKeyToPem(keys.privateKey), cert: svid.chainPem, ca: svid.bundlePem, notAfter: svid.notAfter.getTime() };
  }

  /** Renews at half the life left before `notAfter`. */
  schedule(notAfter: number): void {
    const delay = Math.max(1000, (notAfter - this.#clock()) / 2);
    this.stop();
    this.#timer = setTimeout(() => void this.renew(), delay);
    this.#timer.unref();
  }

  /** New certificate and trust bundle for the listener now (also after a CA rotation step). */
  async renew(): Promise<void> {
    try {
      const own = await this.issue();
      this.#install(own);
      this.schedule(own.notAfter);
    } catch (err) {
      this.#log({ msg: 'renewing the control plane certificate failed; retrying in 10s', error: (err as Error).message });
      this.schedule(this.#clock() + 20_000);
    }
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
