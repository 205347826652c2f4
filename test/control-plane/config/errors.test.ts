import test from 'ava';
import { formatIssue } from '../../../control-plane/config/index.ts';
import { at, CATALOG, file, load, MESH, WEB } from './fixture.ts';

/** One expected issue: the text it points at (its `nth` occurrence), its field path and what its message says. */
interface Expected {
  readonly near: string;
  readonly nth?: number;
  readonly path: string;
  readonly message: RegExp;
  readonly document?: string;
}

const route = (rules: string, extra = '') => `apiVersion: weft/v1
kind: Route
metadata: {name: catalog${extra}}
spec:
  service: catalog
  rules:
${rules}`;

const policy = (spec: string, name = 'catalog-allow') => `apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: ${name}}
spec:
${spec}`;

// Each case is a whole file and every issue it must produce, in file order: no more, no fewer.
const cases: [string, string, Expected[]][] = [
  [
    'accessLog spelled as a word, not a boolean',
    file(`apiVersion: weft/v1\nkind: Mesh\nmetadata: {name: mesh}\nspec: {trustDomain: shop.example, accessLog: "on"}`),
    [{ near: '"on"', path: 'spec.accessLog', message: /^Expected boolean$/, document: 'Mesh mesh' }],
  ],
  [
    'an unknown field deep inside a route',
    file(MESH, CATALOG, route('    - destinations: [{subset: v1}]\n      retries:\n        budget:\n          percnt: 20')),
    [{ near: 'percnt', path: 'spec.rules[0].retries.budget.percnt', message: /^unknown field "percnt"; did you mean "percent"\? \(allowed here: percent, minPerSecond\)$/, document: 'Route default/catalog' }],
  ],
  [
    'an unknown top-level field and one in metadata',
    file(MESH, `apiVersion: weft/v1\nkind: Service\nmetadata: {name: web, labels: {a: b}}\nspec: {port: 80}\nstatus: {}`),
    [
      { near: 'labels', path: 'metadata.labels', message: /unknown field "labels" \(allowed here: name, namespace\)/ },
      { near: 'status', path: 'status', message: /unknown field "status" \(allowed here: apiVersion, kind, metadata, spec\)/ },
    ],
  ],
  [
    'weights that sum to 90',
    file(MESH, CATALOG, route('    - destinations:\n        - {subset: v1, weight: 80}\n        - {subset: v2, weight: 10}')),
    [{ near: 'destinations', path: 'spec.rules[0].destinations', message: /^weights sum to 90; they must sum to 100$/ }],
  ],
  [
    'several destinations, one without a weight; a lone destination weighted 50',
    file(MESH, CATALOG, route('    - destinations: [{subset: v1, weight: 100}, {subset: v2}]\n    - destinations: [{subset: v1, weight: 50}]')),
    [
      { near: '{subset: v2}', path: 'spec.rules[0].destinations[1]', message: /has no weight; when a rule has several destinations, give each a weight/ },
      { near: '50', path: 'spec.rules[1].destinations[0].weight', message: /a lone destination takes all the traffic; its weight must be 100/ },
    ],
  ],
  [
    'a weight out of range and not a whole number',
    file(MESH, CATALOG, route('    - destinations: [{subset: v1, weight: 110}, {subset: v2, weight: 0.5}]')),
    [
      { near: '110', path: 'spec.rules[0].destinations[0].weight', message: /^110 is out of range; it must be between 0 and 100$/ },
      { near: '0.5', path: 'spec.rules[0].destinations[1].weight', message: /^must be a whole number, not the number 0.5$/ },
    ],
  ],
  [
    'a route to a subset the service does not define, and a mirror to another',
    file(MESH, CATALOG, route('    - destinations: [{subset: v1, weight: 50}, {subset: v3, weight: 50}]\n      mirror: {subset: canary, percent: 5}')),
    [
      { near: 'v3', path: 'spec.rules[0].destinations[1].subset', message: /^subset "v3" is not defined by Service default\/catalog; it has v1, v2$/ },
      { near: 'canary', path: 'spec.rules[0].mirror.subset', message: /^subset "canary" is not defined by Service default\/catalog; it has v1, v2$/ },
    ],
  ],
  [
    'a subset of a service that has none',
    file(MESH, WEB, `apiVersion: weft/v1\nkind: Route\nmetadata: {name: web}\nspec:\n  service: web\n  rules: [{destinations: [{subset: v1}]}]`),
    [{ near: 'v1}', path: 'spec.rules[0].destinations[0].subset', message: /Service default\/web has no subsets; add spec.subsets to it/ }],
  ],
  [
    'a Route, an AuthorizationPolicy and a TrafficPolicy naming unknown services',
    file(
      MESH,
      CATALOG,
      route('    - destinations: [{subset: v1}]').replace('service: catalog', 'service: catalog.shop'),
      policy('  service: catalg'),
      'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: web}',
    ),
    [
      { near: 'catalog.shop', path: 'spec.service', message: /^no Service catalog in namespace shop; there are no Services in namespace shop$/ },
      { near: 'catalg', path: 'spec.service', message: /^no Service catalg in namespace default \(did you mean catalog\?\); Services there: catalog$/, document: 'AuthorizationPolicy default/catalog-allow' },
      { near: 'web}', nth: 1, path: 'spec.service', message: /^no Service web in namespace default; Services there: catalog$/, document: 'TrafficPolicy default/web' },
    ],
  ],
  [
    'invalid principals, each with its reason',
    file(
      MESH,
      CATALOG,
      policy(`  service: catalog
  rules:
    - from:
        - principals:
            - spiffe://shop.example/ns//sa/web
            - https://shop.example/ns/default/sa/web
            - spiffe://shop.example/ns/Default/sa/web
            - spiffe://shop.example/*/sa/web
            - "*/sa/*"
            - spiffe://shop.exa*
          notPrincipals:
            - spiffe://shop.example/ns/default/sa/web/*
            - spiffe://other.example/ns/default/sa/web
            - ""`),
    ),
    [
      { near: 'spiffe://shop.example/ns//sa/web', path: 'spec.rules[0].from[0].principals[0]', message: /principal "spiffe:\/\/shop.example\/ns\/\/sa\/web" is invalid: path contains an empty segment; write a SPIFFE ID/ },
      { near: 'https://', path: 'spec.rules[0].from[0].principals[1]', message: /is invalid: scheme must be 'spiffe:\/\/'/ },
      { near: 'spiffe://shop.example/ns/Default', path: 'spec.rules[0].from[0].principals[2]', message: /is invalid: namespace "Default" must be a DNS label/ },
      { near: 'spiffe://shop.example/*/sa/web', path: 'spec.rules[0].from[0].principals[3]', message: /is invalid: a \* may only be the first or the last character/ },
      { near: '"*/sa/*"', path: 'spec.rules[0].from[0].principals[4]', message: /is invalid: it has more than one \*/ },
      { near: 'spiffe://shop.exa*', path: 'spec.rules[0].from[0].principals[5]', message: /is invalid: a prefix must name the whole trust domain and a '\/'/ },
      { near: 'spiffe://shop.example/ns/default/sa/web/*', path: 'spec.rules[0].from[0].notPrincipals[0]', message: /a workload ID ends after \/sa\/<service-account>; this prefix can match no identity/ },
      { near: 'spiffe://other.example', path: 'spec.rules[0].from[0].notPrincipals[1]', message: /^principal "spiffe:\/\/other.example\/ns\/default\/sa\/web" is in trust domain other.example, not the mesh's shop.example/ },
      { near: '""', path: 'spec.rules[0].from[0].notPrincipals[2]', message: /^must not be empty$/ },
    ],
  ],
  [
    'duplicate (kind, namespace, name); the same name in another kind or namespace is fine',
    file(MESH, CATALOG, WEB, WEB.replace('name: web', 'name: web\n  namespace: default'), WEB.replace('name: web', 'name: web\n  namespace: other'), 'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: web}'),
    [{ near: 'web', nth: 1, path: 'metadata.name', message: /^duplicate Service default\/web \(the first is at line 23\); rename one or merge them$/ }],
  ],
  ['no Mesh at all', file(CATALOG), [{ near: 'apiVersion', path: '', message: /^the config has no Mesh document; add one/, document: '' }]],
  [
    'two Meshes',
    file(MESH, CATALOG, MESH.replace('name: mesh', 'name: other')),
    [{ near: 'Mesh', nth: 1, path: 'kind', message: /^a second Mesh \(the first is at line 2\); a config has exactly one Mesh/, document: 'Mesh other' }],
  ],
  [
    'bad durations',
    file(
      MESH.replace('trustDomain: shop.example', 'trustDomain: shop.example\n  certificates: {workloadTtl: 48h}'),
      CATALOG,
      route('    - destinations: [{subset: v1}]\n      timeout: 2 seconds\n    - destinations: [{subset: v1}]\n      timeout: 1m1h\n    - destinations: [{subset: v1}]\n      timeout: 1.5s\n    - destinations: [{subset: v1}]\n      timeout: 0s\n      fault: {delay: {fixed: 10}}\n    - destinations: [{subset: v1}]\n      timeout: 600h'),
    ),
    [
      { near: '48h', path: 'spec.certificates.workloadTtl', message: /^48h is too long; the maximum is 24h$/ },
      { near: '2 seconds', path: 'spec.rules[0].timeout', message: /^"2 seconds" is not a duration; write it like 500ms, 2s, 1m or 1h30m/ },
      { near: '1m1h', path: 'spec.rules[1].timeout', message: /^"1m1h" is not a duration/ },
      { near: '1.5s', path: 'spec.rules[2].timeout', message: /^"1.5s" is not a duration/ },
      { near: '0s', path: 'spec.rules[3].timeout', message: /^0s is zero; give a positive duration or remove the field$/ },
      { near: '10}', path: 'spec.rules[3].fault.delay.fixed', message: /^must be a string, not the number 10; quote it: "10"$/ },
      // Node's timers cannot count past ~24.8 days: a longer one fired after 1 ms.
      { near: '600h', path: 'spec.rules[4].timeout', message: /^600h is too long; the maximum is 24h$/ },
    ],
  ],
  [
    'a stream idle timeout past 24h (a timer could not count it)',
    file(MESH.replace('trustDomain: shop.example', 'trustDomain: shop.example\n  streamIdleTimeout: 25h')),
    [{ near: '25h', path: 'spec.streamIdleTimeout', message: /^25h is too long; the maximum is 24h$/, document: 'Mesh mesh' }],
  ],
  [
    'a stream idle timeout that is not a duration',
    file(MESH.replace('trustDomain: shop.example', 'trustDomain: shop.example\n  streamIdleTimeout: 1.5m')),
    [{ near: '1.5m', path: 'spec.streamIdleTimeout', message: /^"1.5m" is not a duration; write it like 500ms, 2s, 1m or 1h30m/ }],
  ],
  [
    'bad regexes',
    file(
      MESH,
      CATALOG,
      route(`    - match:
        - path: {regex: "/api/(v1"}
        - headers: {x-user: {regex: "(a)\\\\1"}}
        - headers: {x-env: {regex: "(?!prod)"}}
        - path: {regex: "/\\\\p{L}+"}
      destinations: [{subset: v1}]`),
    ),
    [
      { near: '"/api/(v1"', path: 'spec.rules[0].match[0].path.regex', message: /^"\/api\/\(v1" is not a usable regex: it does not compile/ },
      { near: '"(a)', path: 'spec.rules[0].match[1].headers.x-user.regex', message: /backreferences are not supported/ },
      { near: '"(?!prod)"', path: 'spec.rules[0].match[2].headers.x-env.regex', message: /lookahead and lookbehind are not supported/ },
      { near: '"/\\\\p', path: 'spec.rules[0].match[3].path.regex', message: /Unicode escapes \(\\p\{…\}, \\P\{…\}, \\u\{…\}\) are not supported/ },
    ],
  ],
  [
    'a YAML syntax error, with its position: a { never closed, at the { (not the line after it)',
    file(MESH, 'apiVersion: weft/v1\nkind: Service\nmetadata: {name: web\nspec: {port: 8080}'),
    [{ near: '{name: web', path: '', message: /^YAML: Flow map .*; the \{ here is not closed, or a line after it is not indented enough$/, document: 'Service web' }],
  ],
  [
    'a [ never closed on the last line, at the [ (not past the end of the file)',
    file(MESH, 'apiVersion: weft/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  port: 8080\n  protocol: [http\n'),
    [{ near: '[http', path: '', message: /^YAML: Flow sequence .*; the \[ here is not closed, or a line after it is not indented enough$/, document: 'Service web' }],
  ],
  [
    'a key given twice',
    file(MESH, 'apiVersion: weft/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  port: 8080\n  port: 8081'),
    [{ near: 'port', nth: 1, path: '', message: /^YAML: Map keys must be unique$/, document: 'Service web' }],
  ],
  [
    'a line indented one space too far: one problem (not one per parser error), about indentation',
    file(MESH, 'apiVersion: weft/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  port: 8080\n   protocol: http'),
    [{ near: '8080', path: '', message: /^YAML: .*; check the indentation of this line and the lines after it$/, document: 'Service web' }],
  ],
  [
    'documents that are not mappings, have no kind, or an unknown kind or apiVersion',
    file(MESH, '- a\n- list', 'just a string', 'apiVersion: weft/v1\nmetadata: {name: x}', 'apiVersion: weft/v1\nkind: Servise\nmetadata: {name: x}', 'apiVersion: weft/v2\nkind: Service\nmetadata: {name: web}\nspec: {port: 80}'),
    [
      { near: '- a', path: '', message: /^a document must be a mapping with apiVersion, kind, metadata and spec; this one is a list$/, document: 'document 2' },
      { near: 'just a string', path: '', message: /this one is a single value$/, document: 'document 3' },
      { near: 'apiVersion', nth: 1, path: 'kind', message: /^is missing; add kind: one of Mesh, Service, Route, AuthorizationPolicy, TrafficPolicy$/, document: 'document 4' },
      { near: 'Servise', path: 'kind', message: /^unknown kind "Servise" \(did you mean Service\?\); use one of/, document: 'document 5' },
      { near: 'weft/v2', path: 'apiVersion', message: /^must be "weft\/v1", not the string "weft\/v2"$/, document: 'Service default/web' },
    ],
  ],
  [
    'wrong types, bad enums, missing required fields',
    file(
      MESH.replace('trustDomain: shop.example', 'trustDomain: shop.example\n  mtls: {mode: strict}\n  tracing: {endpoint: "127.0.0.1:4318", sampling: 2}'),
      'apiVersion: weft/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  port: "8080"\n  protocol: http3',
      'apiVersion: weft/v1\nkind: Service\nmetadata: {name: api}\nspec:\n  protocol: grpc',
      'apiVersion: weft/v1\nkind: Service\nmetadata: {namespace: default}\nspec: {port: 1}',
    ),
    [
      { near: 'strict', path: 'spec.mtls.mode', message: /^"strict" is not allowed; use one of STRICT, PERMISSIVE \(did you mean STRICT\?\)$/ },
      { near: '"127.0.0.1:4318"', path: 'spec.tracing.endpoint', message: /is not an http\(s\) URL/ },
      { near: '2}', path: 'spec.tracing.sampling', message: /^2 is out of range; it must be between 0 and 1$/ },
      { near: '"8080"', path: 'spec.port', message: /^must be a whole number, not the string "8080"$/ },
      { near: 'http3', path: 'spec.protocol', message: /^"http3" is not allowed; use one of http, http2, grpc, tcp/ },
      { near: 'spec:', nth: 2, path: 'spec.port', message: /^is missing; add port \(a TCP port, 1..65535\)$/, document: 'Service default/api' },
      { near: 'metadata', nth: 3, path: 'metadata.name', message: /^is missing; add name/, document: 'Service (document 4)' },
    ],
  ],
  [
    'header names, methods and retry conditions',
    file(
      MESH,
      CATALOG,
      route(`    - match:
        - headers: {"x user": {exact: a}, X-Env: {exact: a}, x-env: {present: true}}
          methods: [get]
      destinations: [{subset: v1}]
      retries: {on: [503, gateway-error]}`),
    ),
    [
      { near: '"x user"', path: 'spec.rules[0].match[0].headers["x user"]', message: /is not an HTTP header name/ },
      { near: 'x-env', path: 'spec.rules[0].match[0].headers.x-env', message: /header "x-env" is also matched as "X-Env"; header names are case-insensitive/ },
      { near: 'get', path: 'spec.rules[0].match[0].methods[0]', message: /^"get" is not an HTTP method; write it in uppercase, e.g. GET$/ },
      { near: '503', path: 'spec.rules[0].retries.on[0]', message: /^must be a string, not the number 503; quote it: "503"$/ },
      { near: 'gateway-error', path: 'spec.rules[0].retries.on[1]', message: /is not a retry condition; use connect-failure, reset/ },
    ],
  ],
  [
    'gRPC statuses to retry on, for a service that does not speak gRPC',
    file(MESH, CATALOG, route(`    - destinations: [{subset: v1}]
      retries: {on: [unavailable, "503"]}`)),
    [{ near: '[unavailable', path: 'spec.rules[0].retries.on', message: /^names gRPC statuses, but Service default\/catalog speaks http; retry on HTTP statuses such as "503" instead$/ }],
  ],
  [
    'exactly-one-of fields and empty entries',
    file(MESH, CATALOG, route('    - match:\n        - path: {prefix: /a, exact: /b}\n        - {}\n      destinations: [{subset: v1}]\n      stickiness: {}')),
    [
      { near: '{prefix', path: 'spec.rules[0].match[0].path', message: /^gives prefix and exact; give exactly one of exact, prefix, regex$/ },
      { near: '{}', path: 'spec.rules[0].match[1]', message: /is an empty match, which would match every request/ },
      { near: '{}', nth: 1, path: 'spec.rules[0].stickiness', message: /^is empty; give exactly one of header, cookie$/ },
    ],
  ],
  [
    'policy paths, empty sources and conditions without values',
    file(MESH, CATALOG, policy('  service: catalog\n  rules:\n    - from: [{principals: [], namespaces: []}]\n      to: [{paths: [items, /a/*/b, /a/../b, "*", "/%61dmin/*", "/caf%c3%a9", "/a%2fb", "/a%zz"]}]\n      when: [{header: x-env}]')),
    [
      { near: '{principals', path: 'spec.rules[0].from[0]', message: /has only empty lists, so it would match every caller/ },
      { near: 'items', path: 'spec.rules[0].to[0].paths[0]', message: /^path "items" is invalid: a path must start with '\/' \(or be \* for any path\)$/ },
      { near: '/a/*/b', path: 'spec.rules[0].to[0].paths[1]', message: /a \* may only end a prefix/ },
      { near: '/a/../b', path: 'spec.rules[0].to[0].paths[2]', message: /must not contain a ".." segment/ },
      // A sidecar decodes unreserved escapes and upper-cases the rest before matching: these could never match.
      { near: '"/%61dmin/*"', path: 'spec.rules[0].to[0].paths[4]', message: /could never match; write it as \/admin\/\*$/ },
      { near: '"/caf%c3%a9"', path: 'spec.rules[0].to[0].paths[5]', message: /could never match; write it as \/caf%C3%A9$/ },
      { near: '"/a%2fb"', path: 'spec.rules[0].to[0].paths[6]', message: /requests with %2F in their path are refused \(400\), so this could never match/ },
      { near: '"/a%zz"', path: 'spec.rules[0].to[0].paths[7]', message: /malformed percent-encoding at "%zz"/ },
      { near: '{header: x-env}', path: 'spec.rules[0].when[0]', message: /^names header x-env but no values; give values or notValues$/ },
    ],
  ],
  [
    'HTTP-only features on a tcp service, and a second Route for one service',
    file(
      MESH,
      'apiVersion: weft/v1\nkind: Service\nmetadata: {name: db}\nspec: {port: 5432, protocol: tcp}',
      'apiVersion: weft/v1\nkind: Route\nmetadata: {name: db}\nspec:\n  service: db\n  rules:\n    - destinations: [{}]\n      timeout: 1s',
      'apiVersion: weft/v1\nkind: Route\nmetadata: {name: db-again}\nspec:\n  service: db\n  rules: [{destinations: [{}]}]',
      policy('  service: db\n  rules: [{to: [{methods: [GET], ports: [5432]}]}]', 'db'),
    ),
    [
      { near: 'timeout', path: 'spec.rules[0].timeout', message: /^is HTTP-only, but Service default\/db speaks tcp/ },
      { near: 'db\n  rules: [{', path: 'spec.service', message: /^Service default\/db already has Route default\/db \(line 17\); a service has one Route, so merge their rules$/ },
      { near: 'methods', path: 'spec.rules[0].to[0].methods', message: /^is HTTP-only, but Service default\/db speaks tcp; match on ports or on the caller instead$/ },
    ],
  ],
];

for (const [title, text, expected] of cases) {
  test(`rejects ${title}`, (t) => {
    const { config, errors } = load(text);
    t.is(config, undefined, 'a config with errors must not compile');
    const shown = errors.map(formatIssue).join('\n');
    t.is(errors.length, expected.length, shown);
    for (const [i, want] of expected.entries()) {
      const got = errors[i];
      if (!got) continue;
      const where = want.path === '' && want.document === '' ? { line: 1, column: 1 } : at(text, want.near, want.nth);
      t.deepEqual({ line: got.line, column: got.column, path: got.path }, { ...where, path: want.path }, `issue ${i}: ${formatIssue(got)}`);
      t.regex(got.message, want.message, formatIssue(got));
      if (want.document !== undefined) t.is(got.document, want.document);
      t.is(got.file, 'mesh.yaml');
    }
  });
}

test('all the errors of a file are reported, sorted by line, in one run', (t) => {
  const text = file(
    MESH.replace('shop.example', 'Shop.Example'),
    CATALOG.replace('port: 8081', 'port: 0'),
    route('    - destinations: [{subset: v1, weight: 60}, {subset: v2, weight: 30}]\n      timeout: soon'),
    policy('  service: nothere\n  action: PERMIT'),
  );
  const { errors } = load(text);
  t.deepEqual(
    errors.map(formatIssue),
    [
      'mesh.yaml:6:16: Mesh mesh spec.trustDomain: "Shop.Example" is not a trust domain: trust domain must be lowercase; write it like shop.example',
      'mesh.yaml:13:9: Service default/catalog spec.port: 0 is out of range; it must be between 1 and 65535',
      // The route broke its schema (timeout), yet its weights are checked in the same run.
      'mesh.yaml:26:7: Route default/catalog spec.rules[0].destinations: weights sum to 90; they must sum to 100',
      'mesh.yaml:27:16: Route default/catalog spec.rules[0].timeout: "soon" is not a duration; write it like 500ms, 2s, 1m or 1h30m (units h, m, s, ms, largest first)',
      // The policy broke its schema (action), yet its reference to a Service is checked in the same run.
      'mesh.yaml:33:12: AuthorizationPolicy default/catalog-allow spec.service: no Service nothere in namespace default; Services there: catalog',
      'mesh.yaml:34:11: AuthorizationPolicy default/catalog-allow spec.action: "PERMIT" is not allowed; use one of ALLOW, DENY, AUDIT',
    ],
  );
  t.deepEqual([...errors].sort((a, b) => a.line - b.line), [...errors]);
});

test('problems inside a document that broke its schema are not echoed', (t) => {
  // weight "ten" breaks the schema; the sum over it would be noise.
  const { errors } = load(file(MESH, CATALOG, route('    - destinations: [{subset: v1, weight: 90}, {subset: v2, weight: ten}]')));
  t.deepEqual(errors.map((e) => e.path), ['spec.rules[0].destinations[1].weight']);
});
