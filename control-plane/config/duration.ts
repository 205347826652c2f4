// Durations as the mesh config writes them (500ms, 2s, 1m, 1h30m) and their value in milliseconds.

/** Units largest first, each at most once: 1h30m, 2s500ms. The same rule, as a JSON Schema pattern, lets editors check it. */
export const DURATION_PATTERN = '^(?=\\d)(?:(\\d+)h)?(?:(\\d+)m(?!s))?(?:(\\d+)s)?(?:(\\d+)ms)?$';
export const DURATION_HINT = 'is not a duration; write it like 500ms, 2s, 1m or 1h30m (units h, m, s, ms, largest first)';

const DURATION = new RegExp(DURATION_PATTERN);
const UNIT_MS = [3_600_000, 60_000, 1000, 1] as const;

/** Milliseconds in `text`, or null when it is not a duration (or too large to count exactly). */
export function parseDurationMs(text: string): number | null {
  const m = DURATION.exec(text);
  if (!m) return null;
  let ms = 0;
  for (const [i, unit] of UNIT_MS.entries()) {
    const part = m[i + 1];
    if (part !== undefined) ms += Number(part) * unit;
  }
  return Number.isSafeInteger(ms) ? ms : null;
}

/** The shortest config spelling of `ms`: 5400000 → "1h30m", 1500 → "1s500ms", 0 → "0s". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const [i, unit] of UNIT_MS.entries()) {
    const n = Math.floor(rest / unit);
    rest -= n * unit;
    if (n > 0) parts.push(`${n}${['h', 'm', 's', 'ms'][i]}`);
  }
  return parts.join('');
}

/**
 * The longest duration any field takes unless it says otherwise. Timers in the sidecar cannot run past 2^31-1 ms
 * (~24.8 days; Node fires a longer one after 1 ms), and no timeout, delay or ejection is meant to last a day.
 */
export const MAX_DURATION_MS = 24 * 3_600_000;

export type CheckedDuration = { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly reason: string };

/** `text` as milliseconds, within [min, max] (both in ms; min defaults to 1, as a zero duration is never meant; max to MAX_DURATION_MS). */
export function durationWithin(text: string, bounds: { readonly min?: number; readonly max?: number } = {}): CheckedDuration {
  const ms = parseDurationMs(text);
  if (ms === null) return { ok: false, reason: `${JSON.stringify(text)} ${DURATION_HINT}` };
  const min = bounds.min ?? 1;
  if (ms < min) return { ok: false, reason: min === 1 ? `${text} is zero; give a positive duration or remove the field` : `${text} is too short; the minimum is ${formatDuration(min)}` };
  const max = bounds.max ?? MAX_DURATION_MS;
  if (ms > max) return { ok: false, reason: `${text} is too long; the maximum is ${formatDuration(max)}` };
  return { ok: true, ms };
}
