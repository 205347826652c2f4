// The naming rules of mesh config: Kubernetes names, service references, HTTP header and method names.

import { WeftError } from '../../errors.ts';
import type { ServiceRef } from './types.ts';

/**
 * The mesh's own namespace: the control plane (…/ns/weft-system/sa/control-plane) and operators (…/sa/operator)
 * have their identities there. No workload may: a Service there would be refused, and so is a bootstrap token or
 * a renewal for one, since such a certificate could pass for the control plane or an operator.
 */
export const SYSTEM_NAMESPACE = 'weft-system';

/** `namespace`, if a workload may have an identity there (for a bootstrap token); throws for the system's own. */
export function workloadNamespace(namespace: string): string {
  if (namespace !== SYSTEM_NAMESPACE) return namespace;
  throw new WeftError('WEFT_AUTH_FORBIDDEN', `no bootstrap token for the ${SYSTEM_NAMESPACE} namespace: its identities are the control plane's and operators' (an operator certificate comes from weft ca issue)`);
}

/** A DNS-1123 label, as Kubernetes names namespaces and services: lowercase letters, digits and '-', at most 63. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS_LABEL_HINT = "is not a valid name; use lowercase letters, digits and '-', starting and ending with a letter or digit (at most 63)";
/** A DNS-1123 subdomain (dot-separated labels), as Kubernetes names service accounts. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const DNS_SUBDOMAIN_HINT = "is not a valid service account; use lowercase letters, digits, '-' and '.' (at most 253)";
/** `catalog` (same namespace) or `catalog.shop` (namespace shop). */
export const SERVICE_REF_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$';
export const SERVICE_REF_HINT = 'is not a service reference; write the Service name (same namespace) or name.namespace';
/** An HTTP token (RFC 9110); header names compare case-insensitively and are kept lowercase. */
export const HEADER_NAME_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
export const HEADER_NAME_HINT = 'is not an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)';
export const COOKIE_NAME_PATTERN = HEADER_NAME_PATTERN;
export const COOKIE_NAME_HINT = 'is not a cookie name (letters, digits and !#$%&\'*+.^_`|~-)';
export const METHOD_PATTERN = '^[A-Z]+$';
export const METHOD_HINT = 'is not an HTTP method; write it in uppercase, e.g. GET';

const HEADER_NAME = new RegExp(HEADER_NAME_PATTERN);
// Kubernetes label syntax: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_PREFIX = new RegExp(DNS_SUBDOMAIN_PATTERN);

export function isHeaderName(name: string): boolean {
  return HEADER_NAME.test(name);
}

/** Resolves `name` or `name.namespace` against the namespace of the document that wrote it. */
export function parseServiceRef(text: string, namespace: string): ServiceRef {
  const dot = text.indexOf('.');
  return dot === -1 ? { name: text, namespace } : { name: text.slice(0, dot), namespace: text.slice(dot + 1) };
}

/** Why `key` is not a Kubernetes label key, or null. */
export function labelKeyProblem(key: string): string | null {
  const slash = key.lastIndexOf('/');
  const [prefix, name] = slash === -1 ? [null, key] : [key.slice(0, slash), key.slice(slash + 1)];
  if (prefix !== null && (prefix.length > 253 || !LABEL_PREFIX.test(prefix))) return `label key ${JSON.stringify(key)} has an invalid prefix; it must be a lowercase DNS subdomain such as example.com/`;
  if (name.length > 63 || !LABEL_NAME.test(name)) return `label key ${JSON.stringify(key)} is invalid; use letters, digits, '-', '_' and '.', starting and ending with a letter or digit (at most 63)`;
  return null;
}

/** Why `value` is not a Kubernetes label value, or null. */
export function labelValueProblem(value: string): string | null {
  if (value === '') return 'label value is empty; give the value the workloads carry, e.g. v1';
  if (value.length > 63 || !LABEL_NAME.test(value)) return `label value ${JSON.stringify(value)} is invalid; use letters, digits, '-', '_' and '.', starting and ending with a letter or digit (at most 63)`;
  return null;
}
