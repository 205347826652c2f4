// Mesh configs for tests, without repeating the same documents in every file.

/** `services` maps a name to its spec in YAML flow style; `extra` is appended as further documents. */
export function meshYaml(opts: { mesh?: string; services: Record<string, string>; extra?: string }): string {
  const docs = [`apiVersion: weft/v1\nkind: Mesh\nmetadata: {name: mesh}\nspec: {trustDomain: shop.example${opts.mesh ? `, ${opts.mesh}` : ''}}\n`];
  for (const [name, spec] of Object.entries(opts.services)) docs.push(`apiVersion: weft/v1\nkind: Service\nmetadata: {name: ${name}}\nspec: ${spec}\n`);
  return docs.join('---\n') + (opts.extra ? `---\n${opts.extra.replace(/^---\n/, '')}` : '');
}
