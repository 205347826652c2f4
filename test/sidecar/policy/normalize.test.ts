import test from 'ava';
import { normalizeHost, normalizePath } from '../../../sidecar/policy/normalize.ts';

const accepted: [string, string][] = [
  ['/', '/'],
  ['/items', '/items'],
  ['/items/', '/items/'],
  ['//items///x', '/items/x'],
  ['/a/./b', '/a/b'],
  ['/a/b/../c', '/a/c'],
  ['/../../etc/passwd', '/etc/passwd'],
  ['/a/b/..', '/a/'],
  ['/a/.', '/a/'],
  ['/%61dmin', '/admin'],
  ['/%7euser', '/~user'],
  ['/a%2db', '/a-b'],
  ['/%2e%2e/admin', '/admin'],
  ['/x/%2E%2E/admin', '/admin'],
  ['/%20space', '/%20space'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/100%25', '/100%25'],
  ['/a;b=1/c', '/a;b=1/c'],
  ['/items?x=../../y&z=%2F', '/items?x=../../y&z=%2F'],
];

for (const [input, want] of accepted) {
  test(`normalizes ${input}`, (t) => {
    const n = normalizePath(input);
    t.true(n.ok, JSON.stringify(n));
    if (n.ok) t.is(n.path + n.query, want);
  });
}

const refused: [string, RegExp][] = [
  ['/admin%2fsecret', /encoded slash/],
  ['/admin%2Fsecret', /encoded slash/],
  ['/a%5cb', /encoded backslash/],
  ['/a%00b', /encoded NUL/],
  ['/a\\b', /backslash/],
  ['/a#frag', /fragment/],
  ['/a%zz', /malformed percent/],
  ['/a%2', /malformed percent/],
  ['/public/..;/admin', /dot segment with parameters/],
  ['/public/.;x/admin', /dot segment with parameters/],
  ['*', /asterisk/],
  ['http://catalog/admin', /absolute path/],
  ['/a\u0001b', /control character/],
];

for (const [input, reason] of refused) {
  test(`refuses ${JSON.stringify(input)}`, (t) => {
    const n = normalizePath(input);
    t.false(n.ok);
    if (!n.ok) t.regex(n.reason, reason);
  });
}

test('hosts lose case, port and a trailing dot', (t) => {
  t.is(normalizeHost('Catalog.Default.:8080'), 'catalog.default');
  t.is(normalizeHost('CATALOG'), 'catalog');
  t.is(normalizeHost('[::1]:80'), '[::1]');
});
