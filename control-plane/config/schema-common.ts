// Schema building blocks shared by every kind: strict objects, enums, names, durations, percentages, ports.

import { Type, type SchemaOptions, type TLiteral, type TProperties, type TUnion } from '@sinclair/typebox';
import { DURATION_HINT, DURATION_PATTERN } from './duration.ts';
import { DNS_LABEL_HINT, DNS_LABEL_PATTERN, SERVICE_REF_HINT, SERVICE_REF_PATTERN } from './names.ts';

/** An object that refuses fields it does not know, so a misspelt field is an error rather than silently ignored. */
export function Strict<T extends TProperties>(properties: T, options: SchemaOptions = {}) {
  return Type.Object(properties, { ...options, additionalProperties: false });
}

/**
 * An object of optional alternatives of which exactly one must be given: `{exact: /a}` or `{prefix: /a}`.
 * minProperties/maxProperties say it in plain JSON Schema, so editors check it too.
 */
export function OneOf<T extends TProperties>(properties: T, options: SchemaOptions = {}) {
  return Type.Object(properties, { ...options, additionalProperties: false, minProperties: 1, maxProperties: 1 });
}

/** One of a fixed list of strings (JSON Schema: anyOf of consts). */
export function Enum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(values.map((v) => Type.Literal(v)), options) as TUnion<TLiteral<T[number]>[]>;
}

export function Duration(description: string, defaultValue?: string) {
  return Type.String({ pattern: DURATION_PATTERN, errorMessage: DURATION_HINT, description, ...(defaultValue === undefined ? {} : { default: defaultValue }) });
}

export function Percent(description: string, defaultValue?: number) {
  return Type.Number({ minimum: 0, maximum: 100, description, ...(defaultValue === undefined ? {} : { default: defaultValue }) });
}

export function Count(description: string, minimum: number, defaultValue: number, maximum?: number) {
  return Type.Integer({ minimum, ...(maximum === undefined ? {} : { maximum }), description, default: defaultValue });
}

export function Name(description: string, options: SchemaOptions = {}) {
  return Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63, errorMessage: DNS_LABEL_HINT, description, ...options });
}

export const Port = Type.Integer({ minimum: 1, maximum: 65535, description: 'a TCP port, 1..65535' });

export const ServiceRefText = Type.String({ pattern: SERVICE_REF_PATTERN, maxLength: 127, errorMessage: SERVICE_REF_HINT, description: 'a Service: its name (same namespace) or name.namespace' });

export const Metadata = Strict({
  name: Name('the name of this document, unique per kind and namespace'),
  namespace: Type.Optional(Name('the namespace, as in Kubernetes', { default: 'default' })),
});
