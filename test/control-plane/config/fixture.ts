// Mesh config texts for the config tests: a valid base to vary, and where a piece of text sits in a file.

import { loadMeshConfig } from '../../../control-plane/config/index.ts';
import type { ConfigIssue, MeshConfig } from '../../../control-plane/config/index.ts';

export const MESH = `apiVersion: weft/v1
kind: Mesh
metadata:
  name: mesh
spec:
  trustDomain: shop.example
`;

export const CATALOG = `apiVersion: weft/v1
kind: Service
metadata:
  name: catalog
spec:
  port: 8081
  subsets:
    - name: v1
      labels: {version: v1}
    - name: v2
      labels: {version: v2}
`;

export const WEB = `apiVersion: weft/v1
kind: Service
metadata:
  name: web
spec:
  port: 8080
`;

/** Documents joined into one file. */
export function file(...docs: string[]): string {
  return docs.map((d) => d.replace(/\n?$/, '\n')).join('---\n');
}

/** The 1-based line and column of the `occurrence`-th (0-based) `needle` in `text`. */
export function at(text: string, needle: string, occurrence = 0): { line: number; column: number } {
  let index = -1;
  for (let i = 0; i <= occurrence; i++) {
    index = text.indexOf(needle, index + 1);
    if (index === -1) throw new Error(`fixture: ${JSON.stringify(needle)} #${occurrence} not in the text`);
  }
  const before = text.slice(0, index).split('\n');
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

export function load(text: string, name = 'mesh.yaml'): { config?: MeshConfig; errors: readonly ConfigIssue[] } {
  const result = loadMeshConfig(text, name);
  return result.ok ? { config: result.config, errors: [] } : { errors: result.errors };
}
