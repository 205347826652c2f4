// Turns schema violations into issues an operator can act on: which field, what is wrong, what to write instead.

import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import type { FieldPath } from './issues.ts';
import type { Reporter } from './reporter.ts';
import { suggest } from './suggest.ts';

/** How a value is described in a message: `the number 503`, `a list`, `nothing` for `key:` with no value. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `the ${typeof value} ${String(value)}`;
}

function quoteHint(value: unknown): string {
  return typeof value === 'number' || typeof value === 'boolean' ? `; quote it: "${String(value)}"` : '';
}

function range(schema: { minimum?: number; maximum?: number }, what: string, value: unknown): string {
  const { minimum: min, maximum: max } = schema;
  const bounds = min !== undefined && max !== undefined ? `between ${min} and ${max}` : min !== undefined ? `at least ${min}` : `at most ${max}`;
  return `${String(value)} is out of range; ${what} must be ${bounds}`;
}

/**
 * The JSON Schema keywords the messages quote. `errorMessage` (on strings with a pattern) is also shown by editors;
 * `emptyMessage` (on objects that need at least one field) is the loader's own, as an editor would show an object's
 * errorMessage for every problem inside it.
 */
interface Keywords {
  readonly errorMessage?: string;
  readonly emptyMessage?: string;
  readonly description?: string;
  readonly properties?: Record<string, unknown>;
  readonly maxProperties?: number;
  readonly minItems?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly const?: unknown;
  readonly anyOf?: readonly { readonly const?: unknown }[];
}

/** The message for one violation, and whether it is about the field's key (unknown field) or its value. */
function explain(error: ValueError, key: string | number | undefined): { message: string; at: 'key' | 'value' } | null {
  const { value } = error;
  const schema = error.schema as unknown as Keywords;
  const custom = schema.errorMessage;
  const known = Object.keys(schema.properties ?? {});
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const near = typeof key === 'string' ? suggest(key, known) : null;
      return { at: 'key', message: `unknown field ${JSON.stringify(key)}${near ? `; did you mean ${JSON.stringify(near)}?` : ''} (allowed here: ${known.join(', ')})` };
    }
    case ValueErrorType.ObjectRequiredProperty: {
      const what = schema.description;
      return { at: 'key', message: `is missing; add ${String(key)}${what ? ` (${what})` : ''}` };
    }
    case ValueErrorType.ObjectMinProperties:
      if (schema.emptyMessage) return { at: 'value', message: schema.emptyMessage };
      if (known.length > 0 && schema.maxProperties === 1) return { at: 'value', message: `is empty; give exactly one of ${known.join(', ')}` };
      return { at: 'value', message: 'is empty; give at least one entry or remove it' };
    case ValueErrorType.ObjectMaxProperties: {
      const given = Object.keys(value as object).filter((k) => known.includes(k));
      // Only unknown fields beyond the one allowed: those are reported as unknown fields already.
      if (given.length <= 1) return null;
      return { at: 'value', message: `gives ${given.join(' and ')}; give exactly one of ${known.join(', ')}` };
    }
    case ValueErrorType.Object:
      return { at: 'value', message: `must be a mapping (key: value), not ${describe(value)}` };
    case ValueErrorType.Array:
      return { at: 'value', message: `must be a list, not ${describe(value)}` };
    case ValueErrorType.ArrayMinItems:
      return { at: 'value', message: `is an empty list; give at least ${schema.minItems} item, or remove it` };
    case ValueErrorType.String:
      return { at: 'value', message: `must be a string, not ${describe(value)}${quoteHint(value)}` };
    case ValueErrorType.StringMinLength:
      return { at: 'value', message: 'must not be empty' };
    case ValueErrorType.StringMaxLength:
      return { at: 'value', message: `is longer than ${schema.maxLength} characters` };
    case ValueErrorType.StringPattern:
      return { at: 'value', message: `${JSON.stringify(value)} ${custom ?? `does not match ${schema.pattern}`}` };
    case ValueErrorType.Integer:
      return { at: 'value', message: `must be a whole number, not ${describe(value)}` };
    case ValueErrorType.Number:
      return { at: 'value', message: `must be a number, not ${describe(value)}` };
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.NumberMaximum:
      return { at: 'value', message: range(schema, 'it', value) };
    case ValueErrorType.Literal: {
      const expected = schema.const;
      return { at: 'value', message: `must be ${JSON.stringify(expected)}, not ${describe(value)}` };
    }
    case ValueErrorType.Union: {
      const options = (schema.anyOf ?? []).map((o) => o.const);
      if (options.every((o) => typeof o === 'string')) {
        const near = typeof value === 'string' ? suggest(value, options as string[]) : null;
        return { at: 'value', message: `${value === undefined || value === null ? 'is empty' : `${JSON.stringify(value)} is not allowed`}; use one of ${options.join(', ')}${near ? ` (did you mean ${near}?)` : ''}` };
      }
      return { at: 'value', message: error.message };
    }
    default:
      return { at: 'value', message: error.message };
  }
}

/** Splits a JSON Pointer into a field path, telling list indexes from keys by walking `root`. */
function toFieldPath(root: unknown, pointer: string): FieldPath {
  const path: (string | number)[] = [];
  let node = root;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const step = Array.isArray(node) && /^\d+$/.test(seg) ? Number(seg) : seg;
    path.push(step);
    node = node !== null && typeof node === 'object' ? (node as Record<string | number, unknown>)[step] : undefined;
  }
  return path;
}

/** Checks `value` against `schema` and reports every violation; returns the paths of the fields that violate it. */
export function checkSchema(schema: TSchema, value: unknown, report: Reporter): FieldPath[] {
  const errors = [...Value.Errors(schema, value)];
  // A missing field is also "not a string" etc. at the same place; say only that it is missing.
  const missing = errors.filter((e) => e.type === ValueErrorType.ObjectRequiredProperty).map((e) => e.path);
  const reported: FieldPath[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (error.type !== ValueErrorType.ObjectRequiredProperty && missing.some((p) => error.path === p || error.path.startsWith(`${p}/`))) continue;
    const path = toFieldPath(value, error.path);
    const explained = explain(error, path.at(-1));
    if (!explained) continue;
    const id = `${error.path}\0${explained.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    report.error(path, explained.message, explained.at);
    reported.push(path);
  }
  // A violation with nothing useful to say (see ObjectMaxProperties) still makes the document invalid.
  if (reported.length === 0 && errors.length > 0) reported.push(toFieldPath(value, errors[0]!.path));
  return reported;
}
