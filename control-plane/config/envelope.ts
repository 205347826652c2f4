// The part every document shares: it is a mapping, its kind is known, and its metadata names it.

import { isMap, isScalar, isSeq, type Document } from 'yaml';
import type { Reporter } from './reporter.ts';
import { isKind, KINDS, type Kind } from './schema.ts';
import { suggest } from './suggest.ts';

export interface Envelope {
  readonly kind: Kind;
  readonly name: string | null;
  /** '' for the Mesh, which has no namespace */
  readonly namespace: string;
}

/** The YAML nodes the loader skips: a document with nothing in it (e.g. after a trailing ---). */
export function isEmptyDocument(doc: Document): boolean {
  return doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null);
}

/** Reads kind and metadata; reports (and returns null for) a document that is not a mapping or has no known kind. */
export function readEnvelope(doc: Document, value: unknown, report: Reporter): Envelope | null {
  if (!isMap(doc.contents) || value === null || typeof value !== 'object' || Array.isArray(value)) {
    const what = isSeq(doc.contents) ? 'a list' : 'a single value';
    report.error([], `a document must be a mapping with apiVersion, kind, metadata and spec; this one is ${what}`);
    return null;
  }
  const fields = value as Record<string, unknown>;
  const kind = fields.kind;
  if (kind === undefined || kind === null) {
    report.error(['kind'], `is missing; add kind: one of ${KINDS.join(', ')}`, 'key');
    return null;
  }
  if (!isKind(kind)) {
    const near = typeof kind === 'string' ? suggest(kind, KINDS) : null;
    report.error(['kind'], `unknown kind ${JSON.stringify(kind)}${near ? ` (did you mean ${near}?)` : ''}; use one of ${KINDS.join(', ')}`);
    return null;
  }
  const metadata = fields.metadata !== null && typeof fields.metadata === 'object' ? (fields.metadata as Record<string, unknown>) : {};
  const name = typeof metadata.name === 'string' ? metadata.name : null;
  const namespace = kind === 'Mesh' ? '' : typeof metadata.namespace === 'string' ? metadata.namespace : 'default';
  return { kind, name, namespace };
}

/** How issues name a document: `Route default/catalog`, `Mesh mesh`, or `Route (document 3)` with no readable name. */
export function documentLabel(envelope: Envelope, index: number): string {
  if (envelope.name === null) return `${envelope.kind} (document ${index + 1})`;
  return envelope.kind === 'Mesh' ? `Mesh ${envelope.name}` : `${envelope.kind} ${envelope.namespace}/${envelope.name}`;
}
