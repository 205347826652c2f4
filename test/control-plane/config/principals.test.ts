import test from 'ava';
import { parsePolicyPath } from '../../../control-plane/config/policy-paths.ts';
import { parsePrincipal } from '../../../control-plane/config/principals.ts';
import type { PolicyPathMatch, PrincipalMatch } from '../../../control-plane/config/types.ts';

const accepted: [string, PrincipalMatch, string | null][] = [
  ['*', { type: 'any' }, null],
  ['spiffe://shop.example/ns/default/sa/web', { type: 'exact', value: 'spiffe://shop.example/ns/default/sa/web' }, 'shop.example'],
  ['spiffe://shop.example/ns/default/sa/ledger.v2', { type: 'exact', value: 'spiffe://shop.example/ns/default/sa/ledger.v2' }, 'shop.example'],
  // Not a workload form, but a valid SPIFFE ID (e.g. an ingress's own identity).
  ['spiffe://shop.example/ingress', { type: 'exact', value: 'spiffe://shop.example/ingress' }, 'shop.example'],
  ['spiffe://shop.example/ns/default/sa/*', { type: 'prefix', value: 'spiffe://shop.example/ns/default/sa/' }, 'shop.example'],
  ['spiffe://shop.example/ns/default/sa/web-*', { type: 'prefix', value: 'spiffe://shop.example/ns/default/sa/web-' }, 'shop.example'],
  ['spiffe://shop.example/ns/default/*', { type: 'prefix', value: 'spiffe://shop.example/ns/default/' }, 'shop.example'],
  ['spiffe://shop.example/*', { type: 'prefix', value: 'spiffe://shop.example/' }, 'shop.example'],
  ['*/sa/web', { type: 'suffix', value: '/sa/web' }, null],
  ['*web', { type: 'suffix', value: 'web' }, null],
];

for (const [text, match, td] of accepted) {
  test(`principal ${text} is accepted as ${match.type}`, (t) => {
    const parsed = parsePrincipal(text);
    if (!parsed.ok) return t.fail(parsed.reason);
    t.deepEqual(parsed.match, match);
    t.is(parsed.trustDomain, td);
  });
}

// Each: the principal, and a fragment its rejection must contain.
const rejected: [string, string][] = [
  ['', 'it is empty'],
  ['spiffe://shop.example/ns//sa/web', 'empty segment'],
  ['spiffe://shop.example/ns/default/sa/', 'must not end with a slash'],
  ['https://shop.example/ns/default/sa/web', "scheme must be 'spiffe://'"],
  ['shop.example/ns/default/sa/web', "missing the 'spiffe://' scheme"],
  ['spiffe://Shop.example/ns/default/sa/web', 'trust domain must be lowercase'],
  ['spiffe://shop.example:443/ns/default/sa/web', 'must not contain a port'],
  ['spiffe://shop.example/ns/Default/sa/web', 'namespace "Default" must be a DNS label'],
  ['spiffe://shop.example/ns/default/sa', 'a workload ID has the form'],
  ['spiffe://shop.example/ns/default/sa/web?x=1', 'a query is not allowed'],
  ['**', 'more than one *'],
  ['*/sa/*', 'more than one *'],
  ['spiffe://shop.example/*/sa/web', 'only be the first or the last character'],
  ['spiffe://shop.exa*', "must name the whole trust domain and a '/'"],
  ['shop.example/ns/default/*', 'must start with spiffe://<trust-domain>/'],
  ['spiffe://Shop.example/*', 'trust domain must be lowercase'],
  ['spiffe://shop.example/ns/Default/*', 'namespace "Default" must be a DNS label'],
  ['spiffe://shop.example/ns/default/svc/*', 'continues /ns/<namespace>/sa/'],
  ['spiffe://shop.example/ns/default/sa/web/*', 'ends after /sa/<service-account>'],
  ['spiffe://shop.example/ns/../*', 'a ".." segment'],
  ['spiffe://shop.example//*', 'empty segment'],
  ['*/sa/we b', 'the character " "'],
  ['*/sa/../web', 'a ".." segment'],
  ['*/sa/web/', 'empty segment'],
  ['*spiffe://x/sa/web', 'the character ":"'],
];

test(`rejects ${rejected.length} malformed principals, each with its reason`, (t) => {
  for (const [text, reason] of rejected) {
    const parsed = parsePrincipal(text);
    if (parsed.ok) {
      t.fail(`${JSON.stringify(text)} was accepted as ${JSON.stringify(parsed.match)}`);
      continue;
    }
    t.true(parsed.reason.includes(reason), `${JSON.stringify(text)}: "${parsed.reason}" should say "${reason}"`);
  }
});

const paths: [string, PolicyPathMatch | string][] = [
  ['*', { type: 'any' }],
  ['/', { type: 'exact', value: '/' }],
  ['/items', { type: 'exact', value: '/items' }],
  ['/items/', { type: 'exact', value: '/items/' }],
  ['/items/*', { type: 'prefix', value: '/items/' }],
  ['/*', { type: 'prefix', value: '/' }],
  ['items', "must start with '/'"],
  ['/items*', 'a * may only end a prefix'],
  ['/a/*/b', 'a * may only end a prefix'],
  ['/a?x=1', 'must not contain a query'],
  ['/a#top', 'fragment'],
  ['/a b', 'whitespace'],
  ['//a', "must not contain '//'"],
  ['/a/./b', 'a "." segment'],
  ['/a/..', 'a ".." segment'],
];

for (const [text, want] of paths) {
  test(`policy path ${JSON.stringify(text)} ${typeof want === 'string' ? 'is rejected' : `is ${want.type}`}`, (t) => {
    const parsed = parsePolicyPath(text);
    if (typeof want === 'string') {
      t.false(parsed.ok);
      if (!parsed.ok) t.true(parsed.reason.includes(want), parsed.reason);
    } else {
      t.deepEqual(parsed, { ok: true, match: want });
    }
  });
}
