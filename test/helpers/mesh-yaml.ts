// Mesh configs for tests, without repeating the same documents in every file.

/** `services` maps a name to its spec in YAML flow style; `extra` is appended as further documents. */
export function meshYaml(opts: { mesh?: string; services: Record<string, string>; extra?: string }): string {
  const docs = [`apiVersion: weft/v1\nkind: Mesh\nmetadata: {name: mesh}\nspec: {trustDomain: shop.example${opts.mesh ? `, ${opts.mesh}` : ''}}\n`];
  for (const [name, spec] of Object.entries(opts.services)) docs.push(`apiVersion: weft/v1\nkind: Service\nmetadata: {name: ${name}}\nspec: ${spec}\n`);
  return docs.join('---\n') + (opts.extra ? `---\n${opts.extra.replace(/^---\n/, '')}` : '');
}

/** A Route document for `service`; `rules` is the YAML of its rule list, each line indented by four spaces. */
export function routeYaml(service: string, rules: string): string {
  return `apiVersion: weft/v1\nkind: Route\nmetadata: {name: ${service}}\nspec:\n  service: ${service}\n  rules:\n${rules}`;
}

/** A Route rule named `name` for requests whose `header` is `name`, to any endpoint; `body` adds fields (6-space indent). */
export function headerRule(header: string, name: string, body: string): string {
  return `    - name: ${name}\n      match: [{headers: {${header}: {exact: ${name}}}}]\n      destinations: [{weight: 100}]\n${body}`;
}

/** An AuthorizationPolicy document; `rules` is the YAML of its rule list, each line indented by four spaces. */
export function policyYaml(name: string, service: string, action: 'ALLOW' | 'DENY' | 'AUDIT', rules: string): string {
  return `apiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}}\nspec:\n  service: ${service}\n  action: ${action}\n  rules:\n${rules}`;
}

/** A TrafficPolicy for `service`; `spec` is its fields after `service`, one per line, indented two spaces. */
export function trafficPolicyYaml(service: string, spec: string): string {
  return `apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata: {name: ${service}}\nspec:\n  service: ${service}\n${spec}`;
}
