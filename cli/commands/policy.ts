// weft policy check: the sidecar's own evaluator, run on the live config (or a file) for one request.

import { WeftError } from '../../errors.ts';
import { findService, authorizationPoliciesFor } from '../../control-plane/config/lookup.ts';
import { parseMeshConfigOrThrow } from '../../control-plane/config/load.ts';
import type { MeshConfig } from '../../control-plane/config/types.ts';
import { compileAuthorizer } from '../../sidecar/policy/authorizer.ts';
import { normalizePath } from '../../sidecar/policy/normalize.ts';
import { parseSpiffeId } from '../../ca/spiffe-id.ts';
import { readFileSync } from 'node:fs';
import { optional, parse, required } from '../args.ts';
import type { Command } from '../command.ts';
import { CONNECT_FLAGS, CONNECT_HELP, operatorClient } from '../operator-client.ts';

/** Exit status when the request would be denied or rejected, so scripts can tell it from an error (1). */
export const DENIED_EXIT = 3;

async function loadConfig(values: Record<string, unknown>): Promise<{ config: MeshConfig; source: string }> {
  const file = optional(values as never, 'file');
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new WeftError('WEFT_CLI_USAGE', `${file}: cannot be read (${(err as NodeJS.ErrnoException).code})`);
    }
    return { config: parseMeshConfigOrThrow(text, file), source: file };
  }
  const client = operatorClient(values as never);
  try {
    const text = await client.request<string>('GET', '/v1/config');
    return { config: parseMeshConfigOrThrow(text, 'live config'), source: 'the live config' };
  } finally {
    client.close();
  }
}

export const policyCheck: Command = {
  name: 'policy check',
  help: `Usage: weft policy check --from SPIFFE_ID|none --to SERVICE[.NAMESPACE] [--method GET] --path /x
                         [--header name=value ...] [--port N] [-f mesh.yaml | connection flags]

Runs the very evaluator a sidecar runs (same path normalization, same compiled policies) for one request,
against the live config (default) or a file, and prints the decision and the policy and rule that made it.
--from none is a caller without an identity (plaintext in PERMISSIVE mode).
Exit status: 0 allowed, ${DENIED_EXIT} denied or refused, 1 on an error.

${CONNECT_HELP}`,
  async run(argv, out) {
    const { values } = parse('policy check', argv, {
      from: { type: 'string' }, to: { type: 'string' }, method: { type: 'string' }, path: { type: 'string' },
      header: { type: 'string', multiple: true }, port: { type: 'string' }, file: { type: 'string', short: 'f' }, ...CONNECT_FLAGS,
    });
    const fromText = required('policy check', values, 'from');
    const principal = fromText === 'none' ? null : parseSpiffeId(fromText).uri;
    const [name, namespace = 'default'] = required('policy check', values, 'to').split('.');
    const method = (optional(values, 'method') ?? 'GET').toUpperCase();
    const target = required('policy check', values, 'path');
    const headers = new Map<string, string[]>();
    for (const h of (values.header as string[] | undefined) ?? []) {
      const eq = h.indexOf('=');
      if (eq < 1) throw new WeftError('WEFT_CLI_USAGE', `--header ${JSON.stringify(h)} must be name=value`);
      const k = h.slice(0, eq).trim().toLowerCase();
      headers.set(k, [...(headers.get(k) ?? []), h.slice(eq + 1)]);
    }
    const { config, source } = await loadConfig(values);
    const service = findService(config, name!, namespace);
    if (!service) throw new WeftError('WEFT_CLI_USAGE', `no Service ${name}.${namespace} in ${source}; services: ${config.services.map((s) => `${s.name}.${s.namespace}`).join(', ')}`);
    const port = values.port === undefined ? service.port : Number(values.port);
    const n = normalizePath(target);
    if (!n.ok) {
      out.result({ allowed: false, refused: true, status: 400, reason: n.reason }, () => `REFUSED (400): the sidecar rejects this request before policy: ${n.reason}`);
      return DENIED_EXIT;
    }
    const policies = authorizationPoliciesFor(config, service);
    const decision = compileAuthorizer(policies, config.mesh.defaultPolicy).authorize({
      principal, method, path: n.path, port,
      header: (h) => {
        const v = headers.get(h);
        return v === undefined ? undefined : v.length === 1 ? v[0] : v;
      },
    });
    const named = decision.policy ? `${decision.policy}${decision.rule === null ? '' : ` rule ${decision.rule}`}` : 'the mesh default';
    out.result({ allowed: decision.allowed, status: decision.allowed ? 200 : 403, path: n.path, policy: decision.policy, rule: decision.rule, reason: decision.reason, audits: decision.audits, source }, () => [
      `${decision.allowed ? 'ALLOW' : 'DENY (403)'}: ${method} ${n.path} from ${principal ?? 'a caller without identity'} to ${service.name}.${service.namespace}`,
      `  decided by ${named}: ${decision.reason}`,
      ...(n.path !== target.split('?')[0] ? [`  (path normalized from ${target})`] : []),
      ...decision.audits.map((a) => `  audit: rule ${a.rule} of ${a.policy} matched (logged, not enforced)`),
      `  evaluated against ${source} (${policies.length} policy(ies) for the service, mesh default ${config.mesh.defaultPolicy})`,
    ].join('\n'));
    return decision.allowed ? 0 : DENIED_EXIT;
  },
};
