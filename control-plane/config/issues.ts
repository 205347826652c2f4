// A problem found in a mesh config file: where it is (file:line:col and field path), what is wrong, what to do.

import { WeftError } from '../../errors.ts';

/** A field inside one document: ['spec', 'rules', 0, 'destinations']. */
export type FieldPath = readonly (string | number)[];

export interface ConfigIssue {
  readonly file: string;
  /** 1-based */
  readonly line: number;
  /** 1-based */
  readonly column: number;
  /** the field, e.g. `spec.rules[0].destinations`; '' for the document or the file as a whole */
  readonly path: string;
  readonly message: string;
  /** which document: `Route default/catalog`, `Mesh mesh`, or `document 3` when it has no readable kind and name */
  readonly document: string;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `spec.rules[0].match[0].headers.x-user`, quoting keys that are not plain words: `labels["app.kubernetes.io/name"]`. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** `mesh.yaml:14:9: Route default/catalog spec.rules[0].destinations: weights sum to 90; they must sum to 100` */
export function formatIssue(issue: ConfigIssue): string {
  const where = [issue.document, issue.path].filter((s) => s !== '').join(' ');
  return `${issue.file}:${issue.line}:${issue.column}: ${where === '' ? '' : `${where}: `}${issue.message}`;
}

/** By line, then column; issues at the same place keep the order they were found in. */
export function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return issues.map((issue, i) => ({ issue, i })).sort((a, b) => a.issue.line - b.issue.line || a.issue.column - b.issue.column || a.i - b.i).map((x) => x.issue);
}

/** A config that was rejected whole; `issues` lists every problem found, in file order. */
export class ConfigError extends WeftError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const file = issues[0]?.file ?? 'mesh config';
    const count = issues.length === 1 ? '1 error' : `${issues.length} errors`;
    super('WEFT_CONFIG_INVALID', `${file}: ${count}; nothing was applied; fix ${issues.length === 1 ? 'it' : 'them'} and retry:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`, { issues });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}
