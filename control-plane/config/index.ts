// The mesh config module's public face: load and validate mesh.yaml, the compiled types, lookups and the JSON Schema.

export { loadMeshConfig, loadMeshConfigFile, parseMeshConfigOrThrow, MAX_CONFIG_CHARS, type LoadResult } from './load.ts';
export { ConfigError, formatIssue, type ConfigIssue } from './issues.ts';
export { serviceKey, findService, routeFor, trafficPolicyFor, authorizationPoliciesFor } from './lookup.ts';
export { jsonSchema, API_VERSION, KINDS, type Kind } from './schema.ts';
export { DEFAULT_TRAFFIC_POLICY } from './compile-traffic-policy.ts';
export { anchoredRegExp } from './regex.ts';
export { parseDurationMs, formatDuration } from './duration.ts';
export type * from './types.ts';
