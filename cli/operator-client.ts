// How the CLI reaches a control plane as an operator: where it is, which roots to trust, which credential.

import { existsSync, readFileSync } from 'node:fs';
import { WeftError } from '../errors.ts';
import { ControlPlaneClient } from '../control-plane/client.ts';
import { CONTROL_PLANE_SA, type ControlPlaneInfo } from '../control-plane/control-plane.ts';
import { parseCertificates } from '../ca/pem.ts';
import { workloadId } from '../ca/spiffe-id.ts';
import { spiffeIdOfCertificate } from '../ca/svid.ts';
import { DEFAULT_STATE_DIR, StateDir } from '../control-plane/state-dir.ts';
import { optional, type Options, type Parsed } from './args.ts';

export const CONNECT_FLAGS: Options = {
  state: { type: 'string' },
  'control-plane': { type: 'string' },
  'admin-token-file': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string' },
};

export const CONNECT_HELP = `Connecting (defaults come from the control plane's state dir, ${DEFAULT_STATE_DIR}):
  --state DIR              state dir of a local control plane: its address, trust bundle and admin token
  --control-plane URL      address, e.g. https://127.0.0.1:15010
  --ca FILE                trust bundle the control plane's certificate must chain to
  --admin-token-file FILE  operator admin token
  --cert FILE --key FILE   an operator certificate instead (identity spiffe://<td>/ns/weft-system/sa/operator)`;

function read(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new WeftError('WEFT_CLI_USAGE', `--${flag} ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export function operatorClient(values: Parsed['values']): ControlPlaneClient {
  const state = new StateDir(optional(values, 'state') ?? DEFAULT_STATE_DIR);
  const infoPath = state.path('control-plane.json');
  const info: Partial<ControlPlaneInfo> = existsSync(infoPath) ? JSON.parse(readFileSync(infoPath, 'utf8')) as ControlPlaneInfo : {};
  const url = optional(values, 'control-plane') ?? info.url;
  if (!url) throw new WeftError('WEFT_CLI_USAGE', `no control plane address: pass --control-plane URL, or --state DIR of a running control plane (${infoPath} not found)`);
  const caFile = optional(values, 'ca') ?? state.path('ca') + '/bundle.pem';
  const ca = read('ca', caFile);
  const certFile = optional(values, 'cert');
  const keyFile = optional(values, 'key');
  if (!!certFile !== !!keyFile) throw new WeftError('WEFT_CLI_USAGE', '--cert and --key go together');
  const tokenFile = optional(values, 'admin-token-file');
  const adminToken = certFile ? undefined : tokenFile ? read('admin-token-file', tokenFile).trim() : state.readAdminToken();
  return new ControlPlaneClient({
    url,
    ca,
    caSource: optional(values, 'ca') ? `--ca ${caFile}` : caFile,
    serverIdentity: info.identity ?? identityFromBundle(ca, caFile),
    cert: certFile && read('cert', certFile),
    key: keyFile && read('key', keyFile),
    adminToken,
  });
}

/** Without a state dir, the control plane's ID follows from the trust domain named in the bundle's first root. */
function identityFromBundle(ca: string, caFile: string): string {
  try {
    const td = spiffeIdOfCertificate(parseCertificates(ca, caFile)[0]!).trustDomain;
    return workloadId(td, CONTROL_PLANE_SA.namespace, CONTROL_PLANE_SA.serviceAccount).uri;
  } catch {
    throw new WeftError('WEFT_CLI_USAGE', `cannot tell the trust domain from ${caFile}; pass --state DIR of the control plane`);
  }
}
