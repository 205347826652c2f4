// The operator API: apply config, issue bootstrap tokens, revoke certificates, read status. Operators only.

import { WeftError } from '../../errors.ts';
import type { Revocation } from '../revocations.ts';
import { requireOperator, type AuthContext } from './authenticate.ts';
import { field, readBody, readJson, sendJson, type Request, type Response } from './http.ts';
import { configTag } from './config-tag.ts';
import type { MeshConfig } from '../config/types.ts';
import { suggest } from '../config/suggest.ts';

export interface StatusReport {
  readonly version: number;
  readonly configVersion: number;
  readonly controlPlane: { readonly identity: string; readonly rssMb: number; readonly heapUsedMb: number; readonly heapTotalMb: number; readonly externalMb: number };
  readonly sidecars: readonly Record<string, unknown>[];
}

export interface OperatorDeps {
  readonly auth: AuthContext;
  readonly log: (event: Record<string, unknown>) => void;
  /** validates and applies a whole config, or throws with every issue and changes nothing */
  apply(text: string, file: string): { version: number; summary: Record<string, number>; warnings: string[] };
  configText(): string;
  /** `warning` when the service is not in the live config (a token for it is still issued: its config may come later) */
  issueToken(service: string, namespace: string, ttlSeconds: number | undefined): Promise<{ token: string; identity: string; expiresAt: Date; warning?: string }>;
  revoke(what: { serial?: string; identity?: string }): Revocation[];
  status(): StatusReport;
}

const CONFIG_LIMIT = 4 * 1024 * 1024;

export async function putConfig(req: Request, res: Response, deps: OperatorDeps): Promise<void> {
  const who = requireOperator(req, deps.auth);
  const text = (await readBody(req, CONFIG_LIMIT)).toString('utf8');
  const file = typeof req.headers['x-weft-file'] === 'string' ? req.headers['x-weft-file'].slice(0, 256) : 'request body';
  // Checked with nothing awaited before the apply, so no other change can land in between.
  const ifMatch = req.headers['if-match'];
  if (typeof ifMatch === 'string' && ifMatch !== '*' && ifMatch !== configTag(deps.configText())) {
    throw new WeftError('WEFT_CONFIG_CONFLICT', 'the live config changed since this change was made from it (another apply or canary); read it again and retry');
  }
  const result = deps.apply(text, file);
  deps.log({ msg: 'config applied', by: who, file, version: result.version, ...(result.warnings.length ? { warnings: result.warnings } : {}) });
  sendJson(res, 200, result);
}

export function getConfig(req: Request, res: Response, deps: OperatorDeps): void {
  requireOperator(req, deps.auth);
  const text = deps.configText();
  res.writeHead(200, { 'content-type': 'application/yaml', 'cache-control': 'no-store', etag: configTag(text) });
  res.end(text);
}

export async function postToken(req: Request, res: Response, deps: OperatorDeps): Promise<void> {
  const who = requireOperator(req, deps.auth);
  const body = await readJson<Record<string, unknown>>(req);
  const ttl = body.ttlSeconds;
  if (ttl !== undefined && typeof ttl !== 'number') throw new WeftError('WEFT_API_BAD_REQUEST', '"ttlSeconds" must be a number');
  const t = await deps.issueToken(field(body, 'service'), field(body, 'namespace'), ttl);
  // The token itself is a credential: log who asked and for what, never the token.
  deps.log({ msg: 'bootstrap token issued', by: who, identity: t.identity, expiresAt: t.expiresAt.toISOString() });
  sendJson(res, 200, { token: t.token, identity: t.identity, expiresAt: t.expiresAt.toISOString(), ...(t.warning ? { warning: t.warning } : {}) });
}

export async function postRevocation(req: Request, res: Response, deps: OperatorDeps): Promise<void> {
  const who = requireOperator(req, deps.auth);
  const body = await readJson<Record<string, unknown>>(req);
  const serial = field(body, 'serial', { optional: true });
  const identity = field(body, 'identity', { optional: true });
  if (!serial === !identity) throw new WeftError('WEFT_API_BAD_REQUEST', 'give exactly one of "serial" or "identity"');
  const revoked = deps.revoke(serial ? { serial } : { identity });
  deps.log({ msg: 'certificates revoked', by: who, serials: revoked.map((r) => r.serial) });
  sendJson(res, 200, { revoked });
}

export function getStatus(req: Request, res: Response, deps: OperatorDeps): void {
  requireOperator(req, deps.auth);
  sendJson(res, 200, deps.status());
}

/**
 * A token for a Service the live config does not have is still issued (the workload may come before its config,
 * as a pod may before its Service), but a misspelt name would give a sidecar that starts, is ready, and that no
 * route reaches: say so, with the closest name.
 */
export function unknownServiceWarning(config: MeshConfig, name: string, namespace: string): string | undefined {
  if (config.services.some((s) => s.name === name && s.namespace === namespace)) return undefined;
  const near = suggest(name, config.services.filter((s) => s.namespace === namespace).map((s) => s.name));
  return `no Service ${name} in namespace ${namespace} in the live config${near ? `; did you mean ${near}?` : ''} (the token is issued: a sidecar using it serves only once a Service ${name} is applied)`;
}
