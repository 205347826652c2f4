// What a valid config may still have wrong: things that are allowed, since they can be meant, but are most often
// typos. Each is a ConfigIssue like an error, at its field's file:line:col; it never stops a config being applied.
//
// A principal that matches no Service of the config: an ALLOW that names "…/sa/catalogue" when the Service runs as
// "…/sa/catalog" lets nobody in, and nothing else points at it until calls fail with 403. It may name a workload
// this config does not declare (one in another cluster of the trust domain), hence a warning, not an error.

import { formatPath, type ConfigIssue, type FieldPath } from './issues.ts';
import type { ReferenceInput } from './references.ts';
import { suggest } from './suggest.ts';
import type { PrincipalMatch } from './types.ts';

function matches(m: PrincipalMatch, identity: string): boolean {
  switch (m.type) {
    case 'any':
      return true;
    case 'exact':
      return identity === m.value;
    case 'prefix':
      return identity.startsWith(m.value);
    case 'suffix':
      return identity.endsWith(m.value);
  }
}

const written = (m: PrincipalMatch) => (m.type === 'any' ? '*' : m.type === 'prefix' ? `${m.value}*` : m.type === 'suffix' ? `*${m.value}` : m.value);

/** Warnings for a config that loaded without errors (so every document in `input` is valid). */
export function configWarnings(input: ReferenceInput): ConfigIssue[] {
  const identities = [...new Set(input.services.map((s) => s.item.identity))];
  const warnings: ConfigIssue[] = [];
  for (const { item: policy, report } of input.authorizationPolicies) {
    policy.rules.forEach((rule, i) =>
      rule.from.forEach((source, j) => {
        for (const field of ['principals', 'notPrincipals'] as const) {
          source[field].forEach((m, k) => {
            if (identities.some((id) => matches(m, id))) return;
            const path: FieldPath = ['spec', 'rules', i, 'from', j, field, k];
            const near = m.type === 'exact' ? suggest(m.value, identities) : null;
            const { line, column } = report.where(path);
            warnings.push({
              file: input.file,
              line,
              column,
              path: formatPath(path),
              document: report.document,
              message: `principal ${JSON.stringify(written(m))} matches no Service in this config${near ? `; did you mean ${near}?` : ''} (fine if it names a workload declared elsewhere)`,
            });
          });
        }
      }),
    );
  }
  return warnings;
}
