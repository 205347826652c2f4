// Regular expressions in route matches: the RE2-like subset of JS RegExp the mesh accepts, always matched whole.

/** Longest regex accepted; a matcher runs on every request, so keep them small. */
export const MAX_REGEX_LENGTH = 1024;

// RE2 has no backreferences and no lookaround; both can make matching super-linear, so they are refused here too.
const NOT_RE2: readonly [RegExp, string][] = [
  [/\\[1-9]|\\k</, 'backreferences are not supported'],
  [/\(\?<?[=!]/, 'lookahead and lookbehind are not supported'],
];

/** Why `source` is not an acceptable pattern, or null. */
export function regexProblem(source: string): string | null {
  if (source === '') return 'the pattern is empty';
  if (source.length > MAX_REGEX_LENGTH) return `the pattern is longer than ${MAX_REGEX_LENGTH} characters`;
  for (const [re, reason] of NOT_RE2) if (re.test(source)) return reason;
  try {
    new RegExp(source, 'u');
  } catch (err) {
    return `it does not compile: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`;
  }
  return null;
}

/** The matcher a sidecar uses: the pattern must match the whole value (as RE2 full-match does in Envoy), not a substring. */
export function anchoredRegExp(source: string): RegExp {
  return new RegExp(`^(?:${source})$`, 'u');
}
