import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';

import { connectNats } from './nats-connection.js';

// Refused before any dial: nothing listens on port 1, and nothing is asked of it.
const base = { url: 'nats://127.0.0.1:1', name: 'test', logger: pino({ level: 'silent' }), bootTimeoutMs: 1 };

describe('connectNats dialTimeoutMs', () => {
  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses %p before dialling', async (dialTimeoutMs) => {
    await expect(connectNats({ ...base, dialTimeoutMs })).rejects.toThrow(
      new RangeError(`dialTimeoutMs must be a positive number of milliseconds, got ${dialTimeoutMs}`),
    );
  });
});
