import test from 'ava';
import { durationWithin, formatDuration, parseDurationMs } from '../../../control-plane/config/duration.ts';
import { anchoredRegExp, regexProblem } from '../../../control-plane/config/regex.ts';

const durations: [string, number | null][] = [
  ['500ms', 500],
  ['2s', 2000],
  ['1m', 60_000],
  ['1h', 3_600_000],
  ['1h30m', 5_400_000],
  ['1m30s', 90_000],
  ['2s500ms', 2500],
  ['0s', 0],
  ['90s', 90_000],
  ['', null],
  ['2', null],
  ['1.5s', null],
  ['1m1h', null],
  ['1s1s', null],
  ['2 s', null],
  ['2S', null],
  ['1d', null],
  ['-1s', null],
  ['ms', null],
  [`${'9'.repeat(30)}h`, null],
];

for (const [text, ms] of durations) {
  test(`duration ${JSON.stringify(text)} is ${ms === null ? 'rejected' : `${ms}ms`}`, (t) => {
    t.is(parseDurationMs(text), ms);
    if (ms !== null) t.is(parseDurationMs(formatDuration(ms)), ms);
  });
}

test('formatDuration writes the shortest form', (t) => {
  t.deepEqual([0, 500, 1500, 60_000, 5_400_000, 86_400_000].map(formatDuration), ['0s', '500ms', '1s500ms', '1m', '1h30m', '24h']);
});

test('durationWithin checks bounds and refuses zero by default', (t) => {
  t.deepEqual(durationWithin('10s'), { ok: true, ms: 10_000 });
  t.deepEqual(durationWithin('0s'), { ok: false, reason: '0s is zero; give a positive duration or remove the field' });
  t.deepEqual(durationWithin('4m', { min: 300_000 }), { ok: false, reason: '4m is too short; the minimum is 5m' });
  t.deepEqual(durationWithin('25h', { max: 86_400_000 }), { ok: false, reason: '25h is too long; the maximum is 24h' });
  t.false(durationWithin('soon').ok);
});

test('route regexes: RE2-like, compiled with u, matched whole', (t) => {
  t.is(regexProblem('/api/v[0-9]+/.*'), null);
  t.regex(regexProblem('(') ?? '', /does not compile/);
  t.regex(regexProblem('(a)\\1') ?? '', /backreferences/);
  t.regex(regexProblem('(?<n>a)\\k<n>') ?? '', /backreferences/);
  t.regex(regexProblem('(?=a)') ?? '', /lookahead/);
  t.regex(regexProblem('(?<!a)b') ?? '', /lookahead and lookbehind/);
  t.regex(regexProblem('') ?? '', /empty/);
  t.regex(regexProblem('a'.repeat(1025)) ?? '', /longer than 1024/);
  const re = anchoredRegExp('/api/v[0-9]+');
  t.true(re.test('/api/v2'));
  t.false(re.test('/api/v2/items'), 'a regex matches the whole value, not a part of it');
  t.false(anchoredRegExp('a|b').test('ab'));
});
