import test from 'ava';
import { isWeftError } from '../../errors.ts';
import { formatSpiffeId, parseSpiffeId, parseTrustDomain, parseWorkloadId, workloadId } from '../../ca/spiffe-id.ts';

const valid: [string, string, string][] = [
  ['spiffe://example.org', 'example.org', ''],
  ['spiffe://example.org/ns/default/sa/web', 'example.org', '/ns/default/sa/web'],
  ['spiffe://a-b_c.d/x', 'a-b_c.d', '/x'],
  ['spiffe://example.org/Path.With-Case_1', 'example.org', '/Path.With-Case_1'],
  ['spiffe://example.org/...', 'example.org', '/...'],
  ['spiffe://123/x', '123', '/x'],
];

for (const [input, td, path] of valid) {
  test(`accepts ${input}`, (t) => {
    const id = parseSpiffeId(input);
    t.is(id.trustDomain, td);
    t.is(id.path, path);
    t.is(id.uri, input);
  });
}

// Each case: input, and a fragment the rejection's reason must contain.
const invalid: [string, string][] = [
  ['', 'empty'],
  ['example.org/ns/a', "missing the 'spiffe://' scheme"],
  ['https://example.org/ns/a', "scheme must be 'spiffe://'"],
  ['SPIFFE://example.org/a', 'scheme must be lowercase'],
  ['spiffe:/example.org/a', "scheme must be 'spiffe://'"],
  ['spiffe://', 'trust domain is empty'],
  ['spiffe:///path', 'trust domain is empty'],
  ['spiffe://Example.org/a', 'trust domain must be lowercase'],
  ['spiffe://example.org:8080/a', 'must not contain a port'],
  ['spiffe://user@example.org/a', 'must not contain user info'],
  ['spiffe://exa%6dple.org/a', 'percent-encoding is not allowed'],
  ['spiffe://exam ple.org/a', 'trust domain contains the character " "'],
  ['spiffe://example.org/', 'must not end with a slash'],
  ['spiffe://example.org/a/', 'must not end with a slash'],
  ['spiffe://example.org//a', 'empty segment'],
  ['spiffe://example.org/a//b', 'empty segment'],
  ['spiffe://example.org/./a', 'a "." segment'],
  ['spiffe://example.org/a/..', 'a ".." segment'],
  ['spiffe://example.org/a%2Fb', 'percent-encoding is not allowed'],
  ['spiffe://example.org/a?x=1', 'a query is not allowed'],
  ['spiffe://example.org/a#frag', 'a fragment is not allowed'],
  ['spiffe://example.org?x', 'a query is not allowed'],
  ['spiffe://example.org#x', 'a fragment is not allowed'],
  ['spiffe://example.org/a b', 'path contains the character " "'],
  ['spiffe://example.org/ünï', 'path contains the character "ü"'],
  ['spiffe://example.org/a*', 'path contains the character "*"'],
  [`spiffe://${'a'.repeat(256)}/x`, 'longer than 255'],
  [`spiffe://example.org/${'a'.repeat(2048)}`, 'longer than 2048 bytes'],
];

test(`rejects ${invalid.length} invalid SPIFFE IDs, each with its reason`, (t) => {
  t.true(invalid.length >= 20);
  for (const [input, reason] of invalid) {
    const err = t.throws(() => parseSpiffeId(input), undefined, input);
    t.true(isWeftError(err, 'WEFT_SPIFFE_INVALID'), input);
    t.true(err!.message.includes(reason), `${JSON.stringify(input)}: "${err!.message}" should say "${reason}"`);
  }
});

test('parses the mesh workload form and refuses other shapes', (t) => {
  const id = parseWorkloadId('spiffe://shop.example/ns/prod/sa/catalog');
  t.is(id.namespace, 'prod');
  t.is(id.serviceAccount, 'catalog');
  t.is(workloadId('shop.example', 'prod', 'catalog').uri, 'spiffe://shop.example/ns/prod/sa/catalog');
  const cases: [string, string][] = [
    ['spiffe://shop.example/ns/prod', 'a workload ID has the form'],
    ['spiffe://shop.example/sa/x/ns/y', 'a workload ID has the form'],
    ['spiffe://shop.example/ns/Prod/sa/web', 'must be a DNS label'],
    ['spiffe://shop.example/ns/-x/sa/web', 'must be a DNS label'],
    ['spiffe://shop.example/ns/prod/sa/Web', 'must be a DNS subdomain'],
    ['spiffe://shop.example/ns/prod/sa/web/extra', 'a workload ID has the form'],
  ];
  for (const [input, reason] of cases) {
    const err = t.throws(() => parseWorkloadId(input));
    t.true(err!.message.includes(reason), `${input}: ${err!.message}`);
  }
});

test('formats IDs and validates trust domains on their own', (t) => {
  t.is(formatSpiffeId('example.org', ['a', 'b']), 'spiffe://example.org/a/b');
  t.is(formatSpiffeId('example.org', []), 'spiffe://example.org');
  t.throws(() => formatSpiffeId('example.org', ['a/b', '..']), { message: /".." segment/ });
  t.is(parseTrustDomain('example.org'), 'example.org');
  t.throws(() => parseTrustDomain('Example.org'), { message: /lowercase/ });
});
