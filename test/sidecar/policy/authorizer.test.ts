import test from 'ava';
import { parseMeshConfigOrThrow } from '../../../control-plane/config/load.ts';
import { compileAuthorizer, type AuthzRequest } from '../../../sidecar/policy/authorizer.ts';

const WEB = 'spiffe://shop.example/ns/default/sa/web';
const ADMIN = 'spiffe://shop.example/ns/ops/sa/admin';
const OTHER = 'spiffe://shop.example/ns/default/sa/other';

function authorizerFor(policies: string, defaultPolicy = 'allow-authenticated') {
  const config = parseMeshConfigOrThrow(`apiVersion: weft/v1
kind: Mesh
metadata: {name: mesh}
spec: {trustDomain: shop.example, defaultPolicy: ${defaultPolicy}}
---
apiVersion: weft/v1
kind: Service
metadata: {name: catalog}
spec: {port: 8081}
${policies}`, 'test.yaml');
  return compileAuthorizer(config.authorizationPolicies, config.mesh.defaultPolicy);
}

const req = (principal: string | null, method: string, path: string, headers: Record<string, string | string[]> = {}, port = 8081): AuthzRequest => ({ principal, method, path, port, header: (n) => headers[n] });

const POLICIES = `---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: allow-web}
spec:
  service: catalog
  action: ALLOW
  rules:
    - from: [{principals: ["${WEB}"]}]
      to: [{methods: [GET], paths: ["/items", "/items/*"]}]
    - from: [{namespaces: [ops]}]
      to: [{notPaths: ["/internal/*"]}]
      when: [{header: x-env, values: [prod]}, {header: x-team, notValues: [intern]}]
---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: deny-debug}
spec:
  service: catalog
  action: DENY
  rules:
    - to: [{paths: ["/items/debug"]}]
    - from: [{notPrincipals: ["${WEB}", "${ADMIN}"]}]
      to: [{methods: [DELETE]}]
---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: audit-writes}
spec:
  service: catalog
  action: AUDIT
  rules:
    - to: [{methods: [POST, PUT]}]
`;

const cases: [string, AuthzRequest, boolean, string | null, number | null][] = [
  ['web reads items', req(WEB, 'GET', '/items'), true, 'default/allow-web', 0],
  ['web reads an item', req(WEB, 'GET', '/items/42'), true, 'default/allow-web', 0],
  ['prefix does not cover the bare path plus suffix', req(WEB, 'GET', '/itemsx'), false, 'default/allow-web', null],
  ['web may not POST', req(WEB, 'POST', '/items'), false, 'default/allow-web', null],
  ['DENY wins over ALLOW', req(WEB, 'GET', '/items/debug'), false, 'default/deny-debug', 0],
  ['another identity is not web', req(OTHER, 'GET', '/items'), false, 'default/allow-web', null],
  ['no identity is not web', req(null, 'GET', '/items'), false, 'default/allow-web', null],
  ['ops in prod', req(ADMIN, 'POST', '/anything', { 'x-env': 'prod' }), true, 'default/allow-web', 1],
  ['ops without the header', req(ADMIN, 'POST', '/anything'), false, 'default/allow-web', null],
  ['ops, but an intern', req(ADMIN, 'POST', '/anything', { 'x-env': 'prod', 'x-team': 'intern' }), false, 'default/allow-web', null],
  ['a repeated header: every value counts', req(ADMIN, 'POST', '/anything', { 'x-env': 'prod', 'x-team': ['core', 'intern'] }), false, 'default/allow-web', null],
  ['a comma-joined header: every value counts', req(ADMIN, 'POST', '/anything', { 'x-env': 'prod', 'x-team': 'core, intern' }), false, 'default/allow-web', null],
  ['ops, but internal', req(ADMIN, 'GET', '/internal/keys', { 'x-env': 'prod' }), false, 'default/allow-web', null],
  ['DELETE by a stranger hits the notPrincipals DENY', req(OTHER, 'DELETE', '/items/1'), false, 'default/deny-debug', 1],
  ['DELETE without identity hits it too', req(null, 'DELETE', '/items/1'), false, 'default/deny-debug', 1],
];

for (const [name, r, allowed, policy, rule] of cases) {
  test(`policy: ${name}`, (t) => {
    const d = authorizerFor(POLICIES).authorize(r);
    t.is(d.allowed, allowed, d.reason);
    t.is(d.policy, policy);
    t.is(d.rule, rule);
  });
}

test('AUDIT rules are reported, never enforced', (t) => {
  const d = authorizerFor(POLICIES).authorize(req(ADMIN, 'POST', '/x', { 'x-env': 'prod' }));
  t.true(d.allowed);
  t.deepEqual(d.audits, [{ policy: 'default/audit-writes', rule: 0 }]);
});

test('with no policy, the mesh default decides', (t) => {
  const open = authorizerFor('');
  t.true(open.authorize(req(WEB, 'GET', '/x')).allowed);
  const anon = open.authorize(req(null, 'GET', '/x'));
  t.false(anon.allowed);
  t.regex(anon.reason, /authenticated callers only/);
  const closed = authorizerFor('', 'deny');
  const d = closed.authorize(req(WEB, 'GET', '/x'));
  t.false(d.allowed);
  t.is(d.policy, null);
  t.regex(d.reason, /mesh default is deny/);
});

test('an ALLOW policy with no rules allows nothing', (t) => {
  const a = authorizerFor(`---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: lockdown}
spec: {service: catalog, action: ALLOW}
`);
  t.false(a.authorize(req(WEB, 'GET', '/')).allowed);
});

test('wildcard principals and ports', (t) => {
  const a = authorizerFor(`---
apiVersion: weft/v1
kind: AuthorizationPolicy
metadata: {name: wild}
spec:
  service: catalog
  rules:
    - from: [{principals: ["spiffe://shop.example/ns/ops/*"]}]
    - from: [{principals: ["*/sa/web"]}]
      to: [{ports: [8081]}]
`);
  t.true(a.authorize(req(ADMIN, 'GET', '/')).allowed);
  t.true(a.authorize(req(WEB, 'GET', '/')).allowed);
  t.false(a.authorize(req(WEB, 'GET', '/', {}, 9999)).allowed);
  t.false(a.authorize(req(OTHER, 'GET', '/')).allowed);
});
