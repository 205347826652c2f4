import test from 'ava';
import { httpDate, isoTime } from '../../sidecar/clock.ts';

// The formatters must give exactly what Date's own (ICU-backed) methods give, at edges of every field.
const moments = [
  0, // 1970-01-01 Thursday
  Date.UTC(2000, 1, 29, 23, 59, 59, 999), // leap day, last millisecond
  Date.UTC(2026, 10, 26, 9, 5, 7, 8), // single digits everywhere
  Date.UTC(1999, 11, 31, 12, 0, 0, 0),
  Date.UTC(2038, 0, 19, 3, 14, 8, 0), // past 32-bit seconds
  Date.UTC(9999, 11, 31, 23, 59, 59, 999),
  Date.now(),
];

test('isoTime is toISOString and httpDate is toUTCString, for edge moments and now', (t) => {
  for (const ms of moments) {
    t.is(isoTime(ms), new Date(ms).toISOString(), String(ms));
    t.is(httpDate(ms), new Date(ms).toUTCString(), String(ms));
  }
});

test('every day of a week and every month of a year are named as toUTCString names them', (t) => {
  for (let i = 0; i < 7; i++) {
    const ms = Date.UTC(2024, 0, 1 + i);
    t.is(httpDate(ms), new Date(ms).toUTCString());
  }
  for (let m = 0; m < 12; m++) {
    const ms = Date.UTC(2024, m, 15);
    t.is(httpDate(ms), new Date(ms).toUTCString());
  }
});
