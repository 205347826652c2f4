// Collects the issues of one document, each placed at its field's line and column.

import type { Document, LineCounter } from 'yaml';
import { formatPath, type ConfigIssue, type FieldPath } from './issues.ts';
import { locate, type Position } from './positions.ts';

export interface Reporter {
  /** which document, as issues name it: `Route default/catalog` */
  readonly document: string;
  /** records a problem with the field at `path`; `at: 'key'` points at the field's name instead of its value */
  error(path: FieldPath, message: string, at?: 'key' | 'value'): void;
  /** how many problems this document has so far */
  readonly count: number;
  /** where the field at `path` is, to point from one problem to a related place ("the first is at line 3") */
  where(path: FieldPath, at?: 'key' | 'value'): Position;
}

export function documentReporter(file: string, doc: Document, lines: LineCounter, document: string, sink: ConfigIssue[]): Reporter {
  let count = 0;
  return {
    document,
    get count() {
      return count;
    },
    where(path, at = 'value') {
      return locate(doc, lines, path, at);
    },
    error(path, message, at = 'value') {
      count++;
      const { line, column } = locate(doc, lines, path, at);
      sink.push({ file, line, column, path: formatPath(path), message, document });
    },
  };
}

/** One path is the other or inside it. */
const related = (a: FieldPath, b: FieldPath) => a.slice(0, b.length).every((seg, i) => seg === b[i]);

/**
 * A reporter for the checks that run on a document that already failed its schema: it drops what it is told about
 * fields at, inside or around a field that broke the schema, where the checks would only echo that problem.
 */
export function besideProblems(report: Reporter, problems: readonly FieldPath[]): Reporter {
  return {
    document: report.document,
    get count() {
      return report.count;
    },
    where: (path, at) => report.where(path, at),
    error(path, message, at) {
      if (!problems.some((p) => related(p, path))) report.error(path, message, at);
    },
  };
}

/** Where a problem found in the config as a whole (no Mesh at all) is reported. */
export function fileIssue(file: string, message: string): ConfigIssue {
  return { file, line: 1, column: 1, path: '', message, document: '' };
}
