// Loads a mesh config: YAML documents → schema checks → per-kind compile → cross-document checks → one frozen MeshConfig.
//
// A config is accepted whole or not at all: any issue anywhere rejects it, and every issue of the file is reported.

import { readFile } from 'node:fs/promises';
import { LineCounter, parseAllDocuments, visit, type Document, type YAMLError } from 'yaml';
import { compileAuthorizationPolicy } from './compile-authorization-policy.ts';
import { compileMesh } from './compile-mesh.ts';
import { compileRoute } from './compile-route.ts';
import { compileService } from './compile-service.ts';
import { compileTrafficPolicy } from './compile-traffic-policy.ts';
import { documentLabel, isEmptyDocument, readEnvelope } from './envelope.ts';
import { ConfigError, sortIssues, type ConfigIssue, type FieldPath } from './issues.ts';
import { checkLive, type LiveMesh } from './live.ts';
import { positionOf } from './positions.ts';
import { checkReferences, type Compiled, type DocumentHeader, type ReferenceInput } from './references.ts';
import { besideProblems, documentReporter, fileIssue, type Reporter } from './reporter.ts';
import { checkSchema } from './schema-errors.ts';
import { configWarnings } from './warnings.ts';
import { DocumentSchemas, type AuthorizationPolicyDocument, type Kind, type MeshDocument, type ServiceDocument } from './schema.ts';
import type { MeshConfig } from './types.ts';

export type LoadResult =
  | { readonly ok: true; readonly config: MeshConfig; /** allowed, but most often a typo (./warnings.ts) */ readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[] };

/** A mesh config is a few hundred lines; a file far past that is a mistake (or an attack on the parser). */
export const MAX_CONFIG_CHARS = 4 * 1024 * 1024;
// Bounds YAML alias expansion ("billion laughs").
const MAX_ALIAS_COUNT = 100;

interface CheckedDocument extends DocumentHeader {
  /** the document as plain data */
  readonly value: unknown;
  /** the fields that broke its kind's schema; empty when it is valid */
  readonly problems: readonly FieldPath[];
}

/** YAML errors a misplaced indentation causes (the yaml package's codes). */
const INDENTATION_ERRORS = new Set<string>(['BAD_INDENT', 'BLOCK_AS_IMPLICIT_KEY', 'MULTILINE_IMPLICIT_KEY', 'MISSING_CHAR', 'UNEXPECTED_TOKEN']);

/**
 * Where a `[` or `{` that is never closed opened. The yaml package reports it where the collection had to end
 * (the next less-indented line, or past the end of the file), which is not where the mistake is.
 */
function unclosedFlowStart(doc: Document.Parsed, e: YAMLError): number | null {
  if (e.code !== 'BAD_INDENT' || !/^Flow (sequence|map) /.test(e.message)) return null;
  let start: number | null = null;
  visit(doc, {
    Collection(_, node) {
      if (node.flow && node.range?.[1] === e.pos[0]) start = node.range[0];
    },
  });
  return start;
}

/** "Service prices", from the text of a document that does not parse, if its kind and name are there to read. */
function guessLabel(source: string): string | null {
  const kind = /^kind:[ \t]*([A-Za-z]+)[ \t]*$/m.exec(source)?.[1];
  const name = /^metadata:[ \t]*\{[^}]*\bname:[ \t]*([\w.-]+)/m.exec(source)?.[1] ?? /^metadata:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+name:[ \t]*([\w.-]+)/m.exec(source)?.[1];
  return kind && name ? `${kind} ${name}` : null;
}

/** Parses the YAML and checks each document's envelope and schema; syntax errors keep a document out of later checks. */
function checkDocuments(text: string, file: string, issues: ConfigIssue[]): { documents: CheckedDocument[]; unreadable: boolean } {
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const docs: Document.Parsed[] = Array.isArray(parsed) ? parsed : [];
  const checked: CheckedDocument[] = [];
  let unreadable = false;
  for (const [i, doc] of docs.entries()) {
    const generic = `document ${i + 1}`;
    const problems = [...doc.errors, ...doc.warnings];
    // One mistake often trips several parser errors at one place: the first says it. The document is named by
    // its kind and name when they can be read off its text.
    const at = new Set<number>();
    for (const e of problems) {
      if (at.has(e.pos[0])) continue;
      at.add(e.pos[0]);
      const opened = unclosedFlowStart(doc, e);
      const hint =
        opened !== null
          ? `; the ${text[opened]} here is not closed, or a line after it is not indented enough`
          : INDENTATION_ERRORS.has(e.code)
            ? '; check the indentation of this line and the lines after it'
            : '';
      issues.push({ file, ...positionOf(lines, opened ?? e.pos[0]), path: '', message: `YAML: ${e.message}${hint}`, document: guessLabel(text.slice(doc.range[0], doc.range[2])) ?? generic });
    }
    unreadable ||= problems.length > 0;
    if (problems.length > 0 || isEmptyDocument(doc)) continue;
    const report = documentReporter(file, doc, lines, generic, issues);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      report.error([], `YAML: ${(err as Error).message}`);
      unreadable = true;
      continue;
    }
    const envelope = readEnvelope(doc, value, report);
    if (!envelope) continue;
    const named = documentReporter(file, doc, lines, documentLabel(envelope, i), issues);
    checked.push({ ...envelope, report: named, value, problems: checkSchema(DocumentSchemas[envelope.kind], value, named) });
  }
  return { documents: checked, unreadable };
}

/**
 * Compiles every document of `kind`. One that broke its schema is compiled too, so that its other problems show in
 * the same run, but through a reporter that drops problems at or around its broken fields (they would only echo them),
 * and it is marked invalid: later checks treat it with care and it never reaches a MeshConfig.
 */
function compileKind<D, T>(docs: readonly CheckedDocument[], kind: Kind, compile: (doc: D, report: Reporter) => T): Compiled<T>[] {
  const compiled: Compiled<T>[] = [];
  for (const d of docs) {
    if (d.kind !== kind) continue;
    if (d.problems.length === 0) {
      compiled.push({ item: compile(d.value as D, d.report), report: d.report, valid: true });
      continue;
    }
    const report = besideProblems(d.report, d.problems);
    try {
      compiled.push({ item: compile(d.value as D, report), report, valid: false });
    } catch {
      // The value is not the shape compile expects; its schema problems, already reported, say why.
    }
  }
  return compiled;
}

function compileAll(file: string, docs: readonly CheckedDocument[]): ReferenceInput {
  // Identities and principals need the trust domain: only from the one Mesh, and only if it compiled cleanly.
  const meshes = compileKind(docs, 'Mesh', (doc: MeshDocument, report) => {
    const before = report.count;
    return { spec: compileMesh(doc, report), clean: report.count === before };
  });
  const only = docs.filter((d) => d.kind === 'Mesh').length === 1 ? meshes[0] : undefined;
  const mesh = only?.valid && only.item.clean ? only.item.spec : null;
  const td = mesh?.trustDomain ?? null;
  return {
    file,
    headers: docs,
    mesh,
    services: compileKind(docs, 'Service', (doc: ServiceDocument, report) => compileService(doc, td, report)),
    routes: compileKind(docs, 'Route', compileRoute),
    authorizationPolicies: compileKind(docs, 'AuthorizationPolicy', (doc: AuthorizationPolicyDocument, report) => compileAuthorizationPolicy(doc, td, report)),
    trafficPolicies: compileKind(docs, 'TrafficPolicy', compileTrafficPolicy),
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Parses and validates a whole config file: a compiled, defaulted, frozen MeshConfig, or every issue, sorted by line.
 * `live`: the running mesh it is to replace, for what cannot change while it runs (./live.ts).
 */
export function loadMeshConfig(text: string, file: string, live?: LiveMesh): LoadResult {
  if (text.length > MAX_CONFIG_CHARS) return { ok: false, errors: [fileIssue(file, `the file is larger than ${MAX_CONFIG_CHARS} characters; a mesh config is far smaller, so check that this is the right file`)] };
  const issues: ConfigIssue[] = [];
  const { documents, unreadable } = checkDocuments(text, file, issues);
  const input = compileAll(file, documents);
  // With a document unreadable, "no Mesh" or "no such Service" may be false: those checks wait until the YAML parses.
  if (!unreadable) issues.push(...checkReferences(input));
  if (live && issues.length === 0) checkLive(input, live);
  if (issues.length > 0 || !input.mesh) return { ok: false, errors: sortIssues(issues) };
  const items = <T>(list: readonly Compiled<T>[]) => list.filter((c) => c.valid).map((c) => c.item);
  const config: MeshConfig = {
    mesh: input.mesh,
    services: items(input.services),
    routes: items(input.routes),
    authorizationPolicies: items(input.authorizationPolicies),
    trafficPolicies: items(input.trafficPolicies),
    source: text,
  };
  return { ok: true, config: deepFreeze(config), warnings: sortIssues(configWarnings(input)) };
}

/** Reads and loads `path`; a file that cannot be read is reported as an issue like any other. */
export async function loadMeshConfigFile(path: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { ok: false, errors: [fileIssue(path, `cannot read the file (${code}); check the path and its permissions`)] };
  }
  return loadMeshConfig(text, path);
}

/** For callers that treat a bad config as an error: the MeshConfig, or a ConfigError (WEFT_CONFIG_INVALID) listing every issue. */
export function parseMeshConfigOrThrow(text: string, file: string): MeshConfig {
  const result = loadMeshConfig(text, file);
  if (!result.ok) throw new ConfigError(result.errors);
  return result.config;
}
