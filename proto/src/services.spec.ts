import { readFileSync } from 'node:fs';

import { describe, expect, it } from '@jest/globals';

import { DEFAULT_HTTP_PORT, SERVICE_NAMES, SERVICES, SUBJECT_PREFIX } from './services.js';

describe('the one list of services', () => {
  it('proto/services.json (read by scripts and the container probe) equals SERVICES', () => {
    const json: unknown = JSON.parse(readFileSync(new URL('../services.json', import.meta.url), 'utf8'));
    // On a difference: copy SERVICES into proto/services.json, one object a line, same order.
    expect(json).toEqual(SERVICES);
  });

  it('names, subject prefixes and ports are each unique', () => {
    expect(new Set(SERVICE_NAMES).size).toBe(SERVICES.length);
    expect(new Set(Object.values(SUBJECT_PREFIX)).size).toBe(SERVICES.length);
    expect(new Set(Object.values(DEFAULT_HTTP_PORT)).size).toBe(SERVICES.length);
  });
});
