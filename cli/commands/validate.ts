// weft validate: checks a mesh config file the way the control plane will, and lists every problem with file:line:col.

import { accessSync, constants } from 'node:fs';
import { WeftError } from '../../errors.ts';
import { formatIssue, loadMeshConfigFile } from '../../control-plane/config/index.ts';
import type { MeshConfig } from '../../control-plane/config/types.ts';
import { optional, parse } from '../args.ts';
import type { Command } from '../command.ts';

function documentCounts(config: MeshConfig): Record<string, number> {
  return {
    Mesh: 1,
    Service: config.services.length,
    Route: config.routes.length,
    AuthorizationPolicy: config.authorizationPolicies.length,
    TrafficPolicy: config.trafficPolicies.length,
  };
}

export const validate: Command = {
  name: 'validate',
  help: `Usage: weft validate -f FILE [--json]

Loads FILE as the control plane would (YAML, schema of every kind, references between documents) and prints
  FILE: valid (1 Mesh, 3 Service, 1 Route, 2 AuthorizationPolicy, 1 TrafficPolicy)
or every problem, one per line on stderr, as FILE:LINE:COL: KIND NAMESPACE/NAME FIELD: what to do. Exits 1 if
there is any problem. Warnings (allowed, but most often typos: a policy principal that matches no Service) are
printed on stderr as "warning: FILE:LINE:COL: ..." and do not fail the check. With --json, prints
{file, valid, documents, warnings} or {file, valid: false, issues} on stdout.

Flags:
  -f, --file FILE   the mesh config (also accepted as the only argument)

Example: weft validate -f examples/shop/mesh.yaml`,
  async run(argv, out) {
    const { values, positionals } = parse('validate', argv, { file: { type: 'string', short: 'f' } }, true);
    const flag = optional(values, 'file');
    if ((flag === undefined ? positionals.length !== 1 : positionals.length !== 0) || flag === '') {
      throw new WeftError('WEFT_CLI_USAGE', "weft validate: give one config file, as -f FILE; see 'weft validate --help'");
    }
    const file = flag ?? positionals[0]!;
    try {
      accessSync(file, constants.R_OK);
    } catch (err) {
      // As weft apply says it: no file is a mistake in the command, not a problem at line 1 of a config.
      throw new WeftError('WEFT_CLI_USAGE', `${file}: cannot be read (${(err as NodeJS.ErrnoException).code}); check the path`);
    }
    const result = await loadMeshConfigFile(file);
    if (result.ok) {
      const documents = documentCounts(result.config);
      // Warnings do not make a config invalid (exit 0): allowed, but most often typos.
      if (!out.json) for (const w of result.warnings) process.stderr.write(`warning: ${formatIssue(w)}\n`);
      const warned = result.warnings.length ? `; ${result.warnings.length === 1 ? '1 warning' : `${result.warnings.length} warnings`}` : '';
      out.result({ file, valid: true, documents, warnings: result.warnings }, () => `${file}: valid (${Object.entries(documents).map(([kind, n]) => `${n} ${kind}`).join(', ')})${warned}`);
      return 0;
    }
    if (out.json) {
      out.result({ file, valid: false, issues: result.errors }, () => '');
    } else {
      const count = result.errors.length === 1 ? '1 problem' : `${result.errors.length} problems`;
      process.stderr.write(`${result.errors.map(formatIssue).join('\n')}\n${file}: invalid, ${count}\n`);
    }
    return 1;
  },
};
