import pg from 'pg';

/**
 * node-pg's own parser of a timestamptz's text (any offset, BC years): for the forms
 * isoFromTimestamptz's fast path leaves, and for a time wanted as a Date (a page's grant).
 */
export const parseTimestamptz = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ, 'text') as (text: string) => Date;

/**
 * A timestamptz's text as Postgres writes it (DateStyle ISO) in the API's form,
 * `2026-12-06T16:13:00.120Z`: UTC, milliseconds, truncated like `Date#toISOString`.
 *
 * A UTC session writes `2026-12-06 16:13:00.12+00`: the fraction's trailing zeros dropped,
 * none at all on a whole second. That form is cut and padded as a string, with no Date —
 * a page formats two times per record, and `to_char` in the statement cost Postgres more
 * than these slices cost the shard (docs/perf/README.md, "The page statement's Postgres
 * CPU"). Any other form (a session in another time zone, a year outside 0000–9999, BC)
 * goes through node-pg's parser and a Date, as a page's times did before.
 */
export function isoFromTimestamptz(text: string): string {
  const n = text.length;
  if (
    n >= 22 &&
    n <= 29 &&
    text.charCodeAt(4) === DASH &&
    text.charCodeAt(10) === SPACE &&
    text.charCodeAt(n - 3) === PLUS &&
    text.charCodeAt(n - 2) === ZERO &&
    text.charCodeAt(n - 1) === ZERO
  ) {
    if (n === 22) return `${text.slice(0, 10)}T${text.slice(11, 19)}.000Z`;
    if (text.charCodeAt(19) === DOT) {
      // 1 to 6 fraction digits: the first three, padded.
      const fraction = n >= 26 ? text.slice(19, 23) : `${text.slice(19, n - 3)}${'00'.slice(n - 24)}`;
      return `${text.slice(0, 10)}T${text.slice(11, 19)}${fraction}Z`;
    }
  }
  return parseTimestamptz(text).toISOString();
}

/**
 * A Date as a timestamptz parameter's text, as node-pg writes one (its dateToStringUTC, not
 * exported): `2026-12-06T16:13:00.120+00:00`, a year past 9999 in full (`10000-…`), one
 * before year 1 as `… BC`. Date#toISOString is not that: it writes those years `+010000-…Z`
 * and `-000001-…Z`, which Postgres refuses.
 */
export function timestamptzParameter(date: Date): string {
  let year = date.getUTCFullYear();
  const bc = year < 1;
  // Year 0 is 1 BC, -1 is 2 BC.
  if (bc) year = 1 - year;
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${String(year).padStart(4, '0')}-${two(date.getUTCMonth() + 1)}-${two(date.getUTCDate())}` +
    `T${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}` +
    `.${String(date.getUTCMilliseconds()).padStart(3, '0')}+00:00${bc ? ' BC' : ''}`
  );
}

const DASH = 0x2d;
const SPACE = 0x20;
const PLUS = 0x2b;
const ZERO = 0x30;
const DOT = 0x2e;
