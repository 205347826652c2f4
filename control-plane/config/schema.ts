// The schema of every kind of mesh config document (TypeBox), and the JSON Schema editors use to check mesh.yaml.

import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';
import { Duration, Enum, Metadata, Name, Port, Strict } from './schema-common.ts';
import { DNS_SUBDOMAIN_HINT, DNS_SUBDOMAIN_PATTERN } from './names.ts';
import { AuthorizationPolicySpec, TrafficPolicySpec } from './schema-policy.ts';
import { RouteSpec } from './schema-route.ts';

export const API_VERSION = 'weft/v1';

const MeshSpec = Strict({
  trustDomain: Type.String({ minLength: 1, description: 'the SPIFFE trust domain of every identity in the mesh, e.g. shop.example' }),
  mtls: Type.Optional(Strict({ mode: Type.Optional(Enum(['STRICT', 'PERMISSIVE'], { default: 'STRICT', description: 'STRICT: sidecars accept only mTLS; PERMISSIVE: plain text too' })) })),
  certificates: Type.Optional(Strict({ workloadTtl: Type.Optional(Duration('lifetime of workload certificates, 5m..24h', '1h')) })),
  defaultPolicy: Type.Optional(Enum(['allow-authenticated', 'deny'], { default: 'allow-authenticated', description: 'what a service with no AuthorizationPolicy allows' })),
  accessLog: Type.Optional(
    Type.Boolean({ default: false, description: 'one JSON line per request and TCP connection on each sidecar\'s stderr; off by default, as in Istio and Linkerd (it costs a write and ~5 µs of CPU per request)' }),
  ),
  streamIdleTimeout: Type.Optional(
    Duration('how long a request or stream may have no byte moving in either direction before the sidecar ends it (Envoy\'s stream_idle_timeout); 0s turns it off; at most 24h', '5m'),
  ),
  tracing: Type.Optional(
    Strict({
      endpoint: Type.String({ minLength: 1, description: 'the OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces' }),
      sampling: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 1, description: 'share of traces kept, 0..1' })),
    }),
  ),
});

const Subset = Strict({
  name: Name('the subset name, unique within the service'),
  labels: Type.Record(Type.String(), Type.String(), { minProperties: 1, description: 'the labels a workload carries to belong to this subset' }),
});

const ServiceSpec = Strict({
  port: Port,
  protocol: Type.Optional(Enum(['http', 'http2', 'grpc', 'tcp'], { default: 'http' })),
  serviceAccount: Type.Optional(Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253, errorMessage: DNS_SUBDOMAIN_HINT, description: 'the identity is spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>; default: the service name' })),
  subsets: Type.Optional(Type.Array(Subset, { description: 'named groups of workloads (e.g. versions) that routes can send traffic to' })),
});

function Document<K extends string, M extends TProperties, S extends TProperties>(kind: K, metadata: TObject<M>, spec: TObject<S>) {
  return Strict({ apiVersion: Type.Literal(API_VERSION), kind: Type.Literal(kind), metadata, spec }, { title: `${kind} (${API_VERSION})` });
}

export const DocumentSchemas = {
  // A Mesh is cluster-wide: it has a name but no namespace.
  Mesh: Document('Mesh', Strict({ name: Name('the name of the mesh') }), MeshSpec),
  Service: Document('Service', Metadata, ServiceSpec),
  Route: Document('Route', Metadata, RouteSpec),
  AuthorizationPolicy: Document('AuthorizationPolicy', Metadata, AuthorizationPolicySpec),
  TrafficPolicy: Document('TrafficPolicy', Metadata, TrafficPolicySpec),
} as const;

export type Kind = keyof typeof DocumentSchemas;
export const KINDS = Object.keys(DocumentSchemas) as Kind[];

export type MeshDocument = Static<typeof DocumentSchemas.Mesh>;
export type ServiceDocument = Static<typeof DocumentSchemas.Service>;
export type RouteDocument = Static<typeof DocumentSchemas.Route>;
export type AuthorizationPolicyDocument = Static<typeof DocumentSchemas.AuthorizationPolicy>;
export type TrafficPolicyDocument = Static<typeof DocumentSchemas.TrafficPolicy>;

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && Object.hasOwn(DocumentSchemas, value);
}

/**
 * A JSON Schema (draft-07) for one document of mesh.yaml, chosen by `kind` (if/then), built from the same schemas the
 * loader checks with. Editors that read `errorMessage` (VS Code, yaml-language-server) show the loader's hints.
 */
export function jsonSchema(): Record<string, unknown> {
  const plain = (schema: unknown) => JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: `Weft mesh config document (${API_VERSION})`,
    description: 'One YAML document of a Weft mesh config; a file holds several, separated by ---.',
    type: 'object',
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    properties: { apiVersion: { const: API_VERSION }, kind: { enum: KINDS } },
    allOf: KINDS.map((kind) => ({ if: { properties: { kind: { const: kind } }, required: ['kind'] }, then: plain(DocumentSchemas[kind]) })),
  };
}
