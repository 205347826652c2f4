import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { tempDir, writeTemp } from '../../helpers/ca.ts';
import { REPO, weft } from '../../helpers/cli.ts';
import { at, CATALOG, file, MESH, WEB } from './fixture.ts';

type Schema = Record<string, unknown> & {
  properties?: Record<string, Schema>;
  patternProperties?: Record<string, Schema>;
  items?: Schema;
  anyOf?: Schema[];
  allOf?: { if: Schema; then: Schema }[];
  additionalProperties?: unknown;
};

const EXAMPLE = join(REPO, 'examples/shop/mesh.yaml');

test('weft validate -f accepts the example shop and counts its documents', async (t) => {
  const r = await weft(['validate', '-f', 'examples/shop/mesh.yaml']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'examples/shop/mesh.yaml: valid (1 Mesh, 4 Service, 1 Route, 4 AuthorizationPolicy, 1 TrafficPolicy)\n');
  t.is(r.stderr, '');
  const json = await weft(['validate', '--file', EXAMPLE, '--json']);
  t.is(json.code, 0, json.stderr);
  t.deepEqual(JSON.parse(json.stdout), { file: EXAMPLE, valid: true, documents: { Mesh: 1, Service: 4, Route: 1, AuthorizationPolicy: 4, TrafficPolicy: 1 }, warnings: [] });
});

test('a policy principal that matches no Service is a warning, with a guess: valid (exit 0), named at file:line:col', async (t) => {
  const text = file(
    MESH,
    CATALOG,
    WEB,
    `apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: catalog-callers}
spec:
  service: catalog
  rules:
    - from: [{principals: ["spiffe://shop.example/ns/default/sa/webb", "spiffe://shop.example/ns/default/sa/web", "*/sa/web", "spiffe://shop.example/ns/other/*"]}]
    - from: [{notPrincipals: ["spiffe://shop.example/ns/default/sa/catalgo"]}]
`,
  );
  const f = writeTemp(tempDir(), 'mesh.yaml', text);
  const r = await weft(['validate', '-f', f]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `${f}: valid (1 Mesh, 2 Service, 0 Route, 1 AuthorizationPolicy, 0 TrafficPolicy); 3 warnings\n`);
  const where = (needle: string) => `${f}:${at(text, needle).line}:${at(text, needle).column}`;
  t.is(
    r.stderr,
    [
      `warning: ${where('"spiffe://shop.example/ns/default/sa/webb"')}: AuthorizationPolicy default/catalog-callers spec.rules[0].from[0].principals[0]: principal "spiffe://shop.example/ns/default/sa/webb" matches no Service in this config; did you mean spiffe://shop.example/ns/default/sa/web? (fine if it names a workload declared elsewhere)`,
      `warning: ${where('"spiffe://shop.example/ns/other/*"')}: AuthorizationPolicy default/catalog-callers spec.rules[0].from[0].principals[3]: principal "spiffe://shop.example/ns/other/*" matches no Service in this config (fine if it names a workload declared elsewhere)`,
      `warning: ${where('"spiffe://shop.example/ns/default/sa/catalgo"')}: AuthorizationPolicy default/catalog-callers spec.rules[1].from[0].notPrincipals[0]: principal "spiffe://shop.example/ns/default/sa/catalgo" matches no Service in this config; did you mean spiffe://shop.example/ns/default/sa/catalog? (fine if it names a workload declared elsewhere)`,
      '',
    ].join('\n'),
  );
  const json = JSON.parse((await weft(['validate', '-f', f, '--json'])).stdout);
  t.is(json.valid, true);
  t.deepEqual(json.warnings.map((w: { path: string }) => w.path), ['spec.rules[0].from[0].principals[0]', 'spec.rules[0].from[0].principals[3]', 'spec.rules[1].from[0].notPrincipals[0]']);
});

test('weft validate -f lists every problem as file:line:col on stderr and exits 1', async (t) => {
  const bad = writeTemp(
    tempDir(),
    'mesh.yaml',
    file(
      MESH,
      CATALOG,
      `apiVersion: weft/v1
kind: Route
metadata: {name: catalog}
spec:
  service: catalog
  rules:
    - destinations:
        - {subset: v1, weight: 80}
        - {subset: v2, weight: 10}
      timeot: 2s`,
    ),
  );
  const r = await weft(['validate', '-f', bad]);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.deepEqual(r.stderr.trimEnd().split('\n'), [
    `${bad}:26:7: Route default/catalog spec.rules[0].destinations: weights sum to 90; they must sum to 100`,
    `${bad}:29:7: Route default/catalog spec.rules[0].timeot: unknown field "timeot"; did you mean "timeout"? (allowed here: name, match, destinations, stickiness, timeout, retries, mirror, fault)`,
    `${bad}: invalid, 2 problems`,
  ]);
  const json = await weft(['validate', '-f', bad, '--json']);
  t.is(json.code, 1);
  const out = JSON.parse(json.stdout) as { valid: boolean; issues: { line: number; column: number; path: string; document: string }[] };
  t.false(out.valid);
  t.deepEqual(out.issues.map((i) => [i.line, i.column, i.path, i.document]), [
    [26, 7, 'spec.rules[0].destinations', 'Route default/catalog'],
    [29, 7, 'spec.rules[0].timeot', 'Route default/catalog'],
  ]);
});

test('weft validate: a missing file or no file is a usage error (exit 2), naming the path', async (t) => {
  const missing = await weft(['validate', '-f', '/nonexistent/mesh.yaml']);
  t.is(missing.code, 2);
  t.is(missing.stderr, 'weft: /nonexistent/mesh.yaml: cannot be read (ENOENT); check the path [WEFT_CLI_USAGE]\n');
  const none = await weft(['validate']);
  t.is(none.code, 2);
  t.regex(none.stderr, /weft validate: give one config file, as -f FILE.*\[WEFT_CLI_USAGE\]/);
  const help = await weft(['--help']);
  t.regex(help.stdout, /\n {2}validate +check a mesh config file/);
  t.regex(help.stdout, /\n {2}schema +print the JSON Schema/);
});

/** The fields of `value` that `schema` does not declare where it says additionalProperties: false (a tiny evaluator). */
function unknownFields(schema: Schema, value: unknown, path = ''): string[] {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return schema.items ? value.flatMap((v, i) => unknownFields(schema.items!, v, `${path}[${i}]`)) : [];
  const found: string[] = [];
  for (const branch of schema.allOf ?? []) {
    const kind = (branch.if.properties!.kind as { const: string }).const;
    if ((value as { kind?: unknown }).kind === kind) found.push(...unknownFields(branch.then, value, path));
  }
  for (const [key, v] of Object.entries(value)) {
    const declared = schema.properties?.[key] ?? Object.values(schema.patternProperties ?? {})[0];
    if (declared) found.push(...unknownFields(declared, v, path ? `${path}.${key}` : key));
    else if (schema.additionalProperties === false) found.push(path ? `${path}.${key}` : key);
  }
  return found;
}

test('weft schema prints a JSON Schema that knows every kind and refuses unknown fields', async (t) => {
  const r = await weft(['schema']);
  t.is(r.code, 0, r.stderr);
  const schema = JSON.parse(r.stdout) as Schema;
  t.is(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  const branches = schema.allOf!;
  t.deepEqual(branches.map((b) => (b.if.properties!.kind as { const: string }).const), ['Mesh', 'Service', 'Route', 'AuthorizationPolicy', 'TrafficPolicy']);
  for (const b of branches) {
    t.is(b.then.additionalProperties, false);
    t.deepEqual(Object.keys(b.then.properties!), ['apiVersion', 'kind', 'metadata', 'spec']);
  }
  // Every object with declared properties, at any depth, is closed.
  const open: string[] = [];
  const walk = (s: unknown, at: string) => {
    if (s === null || typeof s !== 'object') return;
    const o = s as Schema;
    if (o.properties && o.additionalProperties !== false) open.push(at);
    for (const [k, v] of Object.entries(o)) walk(v, `${at}/${k}`);
  };
  for (const b of branches) walk(b.then, (b.if.properties!.kind as { const: string }).const);
  t.deepEqual(open, []);

  // Checked with the schema alone: the example has no unknown field, a misspelt one anywhere is found.
  const docs = parseAllDocuments(readFileSync(EXAMPLE, 'utf8')) as { toJS(): unknown }[];
  t.is(docs.length, 11);
  for (const d of docs) t.deepEqual(unknownFields(schema, d.toJS()), []);
  const route = parseAllDocuments(readFileSync(EXAMPLE, 'utf8')).map((d) => d.toJS() as { kind: string; spec: { rules: { destinations: Record<string, unknown>[] }[] } }).find((d) => d.kind === 'Route')!;
  route.spec.rules[1]!.destinations[0]!.wieght = 90;
  t.deepEqual(unknownFields(schema, { ...route, extra: 1 }), ['spec.rules[1].destinations[0].wieght', 'extra']);

  // The loader's hints travel with it for editors that show errorMessage.
  t.regex(r.stdout, /"errorMessage": "is not a duration; write it like 500ms/);
  const json = await weft(['schema', '--json']);
  t.deepEqual(JSON.parse(json.stdout), schema);
});
