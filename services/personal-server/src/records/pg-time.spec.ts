import { describe, expect, it } from '@jest/globals';

import { isoFromTimestamptz, timestamptzParameter } from './pg-time.js';

describe('isoFromTimestamptz', () => {
  it('gives a UTC session’s text in the API’s form: three fraction digits, padded or truncated (never rounded)', () => {
    expect(isoFromTimestamptz('2026-12-06 16:13:00+00')).toBe('2026-12-06T16:13:00.000Z');
    expect(isoFromTimestamptz('2026-12-06 16:13:00.1+00')).toBe('2026-12-06T16:13:00.100Z');
    expect(isoFromTimestamptz('2026-12-06 16:13:00.12+00')).toBe('2026-12-06T16:13:00.120Z');
    expect(isoFromTimestamptz('2026-12-06 16:13:00.123+00')).toBe('2026-12-06T16:13:00.123Z');
    expect(isoFromTimestamptz('2026-12-06 16:13:00.1239+00')).toBe('2026-12-06T16:13:00.123Z');
    expect(isoFromTimestamptz('2026-12-06 16:13:00.999999+00')).toBe('2026-12-06T16:13:00.999Z');
    expect(isoFromTimestamptz('0001-01-01 00:00:00.001+00')).toBe('0001-01-01T00:00:00.001Z');
  });

  it('turns any other offset into UTC', () => {
    expect(isoFromTimestamptz('2026-12-06 17:13:00.12+01')).toBe('2026-12-06T16:13:00.120Z');
    expect(isoFromTimestamptz('2026-12-06 21:43:00+05:30')).toBe('2026-12-06T16:13:00.000Z');
    expect(isoFromTimestamptz('2026-12-06 11:13:00.5-05')).toBe('2026-12-06T16:13:00.500Z');
    // A historical zone's local mean time has seconds in its offset.
    expect(isoFromTimestamptz('1890-01-01 00:53:28+00:53:28')).toBe('1890-01-01T00:00:00.000Z');
  });

  it('gives the years a four-digit form cannot hold as Date#toISOString does', () => {
    expect(isoFromTimestamptz('10000-01-01 00:00:00+00')).toBe('+010000-01-01T00:00:00.000Z');
    expect(isoFromTimestamptz('0044-03-15 12:00:00+00 BC')).toBe(new Date(Date.UTC(-43, 2, 15, 12)).toISOString());
  });
});

describe('timestamptzParameter', () => {
  it('writes a Date as node-pg does, years past 9999 and before 1 included', () => {
    expect(timestamptzParameter(new Date('2026-12-06T16:13:00.12Z'))).toBe('2026-12-06T16:13:00.120+00:00');
    expect(timestamptzParameter(new Date('0005-01-02T03:04:05.006Z'))).toBe('0005-01-02T03:04:05.006+00:00');
    expect(timestamptzParameter(new Date('+010000-01-01T00:00:00.000Z'))).toBe('10000-01-01T00:00:00.000+00:00');
    expect(timestamptzParameter(new Date(8.64e15))).toBe('275760-09-13T00:00:00.000+00:00');
    expect(timestamptzParameter(new Date('0000-06-01T00:00:00.000Z'))).toBe('0001-06-01T00:00:00.000+00:00 BC');
    expect(timestamptzParameter(new Date('-000001-06-01T00:00:00.000Z'))).toBe('0002-06-01T00:00:00.000+00:00 BC');
  });
});
