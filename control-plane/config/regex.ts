// Regular expressions in route matches: the RE2-like subset of JS RegExp the mesh accepts, always matched whole,
// and in time linear in the input, as RE2 (Envoy's safe_regex) guarantees.
//
// V8's backtracking engine can take exponential time on patterns like `(a+)+`: one request with a path of ~40
// characters would stall a sidecar for hours. V8 also has a linear-time engine (no backreferences, no lookaround,
// no Unicode mode), ~50 times slower per match. So a pattern is accepted only if that engine can run it, and the
// matcher runs on the fast engine with V8's fallback on: after REGEXP_BACKTRACKS_BEFORE_FALLBACK backtracks in one
// match, the match is finished by the linear engine. Ordinary paths match at full speed; a hostile one cannot take
// more than a few milliseconds.

const { setFlagsFromString } = process.getBuiltinModule('node:v8') as typeof import('node:v8');
// Read when a RegExp is compiled or first run, so setting them before any route is compiled is enough.
setFlagsFromString('--enable-experimental-regexp-engine');
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

/** Longest regex accepted; a matcher runs on every request, so keep them small. */
export const MAX_REGEX_LENGTH = 1024;

// RE2 has no backreferences and no lookaround; both can make matching super-linear, so they are refused here too
// (with a clearer reason than the linear engine's own).
const NOT_RE2: readonly [RegExp, string][] = [
  [/\\[1-9]|\\k</, 'backreferences are not supported'],
  [/\(\?<?[=!]/, 'lookahead and lookbehind are not supported'],
  // The matcher is not in Unicode mode (below), where these would mean something else.
  [/\\[pP]\{|\\u\{/, 'Unicode escapes (\\p{…}, \\P{…}, \\u{…}) are not supported'],
  [/[^\x00-\xff]/, 'characters outside Latin-1 are not supported: write them percent-encoded, as they arrive in a path'],
];

/** Why `source` is not an acceptable pattern, or null. */
export function regexProblem(source: string): string | null {
  if (source === '') return 'the pattern is empty';
  if (source.length > MAX_REGEX_LENGTH) return `the pattern is longer than ${MAX_REGEX_LENGTH} characters`;
  for (const [re, reason] of NOT_RE2) if (re.test(source)) return reason;
  try {
    // Unicode mode's stricter syntax: no silently literal `\q` or stray `{`.
    new RegExp(source, 'u');
  } catch (err) {
    return `it does not compile: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`;
  }
  try {
    new RegExp(source, 'l');
  } catch (err) {
    const why = (err as Error).message.replace(/^Invalid regular expression: \/.*\/l?: /s, '');
    return `it cannot be matched in linear time (${why.toLowerCase()})`;
  }
  return null;
}

/**
 * The matcher a sidecar uses: the pattern must match the whole value (as RE2 full-match does in Envoy), not a
 * substring. Not Unicode mode, which the linear fallback does not support: paths and header values reach the
 * matcher as Latin-1 strings, where the two modes agree.
 */
export function anchoredRegExp(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}
