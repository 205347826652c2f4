// Where a field sits in the YAML text: walks a parsed document by field path and returns its 1-based line and column.

import { isAlias, isMap, isNode, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { FieldPath } from './issues.ts';

export interface Position {
  readonly line: number;
  readonly column: number;
}

function start(node: Node | null | undefined): number | null {
  return node?.range ? node.range[0] : null;
}

function keyText(key: unknown): string | null {
  if (isScalar(key)) return String(key.value);
  return null;
}

/**
 * The offset of the field at `path`: its key (`at: 'key'`, for "unknown field" and problems with a whole entry) or its
 * value. A field that is missing points at the key of its nearest parent that exists, i.e. where it should be added.
 */
export function locateOffset(doc: Document, path: FieldPath, at: 'key' | 'value' = 'value'): number {
  let node: unknown = doc.contents;
  let anchor: number | null = start(doc.contents as Node | null) ?? doc.range?.[0] ?? 0;
  let keyOffset: number | null = null;
  for (const seg of path) {
    // An alias points at a node written elsewhere; its fields are found (and reported) there.
    if (isAlias(node)) node = node.resolve(doc);
    keyOffset = null;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg));
      if (!pair) return anchor;
      keyOffset = isNode(pair.key) ? start(pair.key) : null;
      anchor = keyOffset ?? anchor;
      node = pair.value;
      // `key:` with no value: the key is the only place to point at.
      if (!isNode(node)) return anchor;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      node = node.items[seg];
      anchor = isNode(node) ? (start(node) ?? anchor) : anchor;
    } else {
      return anchor;
    }
  }
  if (at === 'key' && keyOffset !== null) return keyOffset;
  return (isNode(node) ? start(node) : null) ?? anchor;
}

export function locate(doc: Document, lines: LineCounter, path: FieldPath, at: 'key' | 'value' = 'value'): Position {
  const { line, col } = lines.linePos(locateOffset(doc, path, at));
  return { line, column: col };
}

export function positionOf(lines: LineCounter, offset: number): Position {
  const { line, col } = lines.linePos(offset);
  return { line, column: col };
}
