import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from '@jest/globals';

import { SLOW_FIRST } from '../jest-slow-first.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('SLOW_FIRST', () => {
  // A renamed or deleted file would silently drop out of the list and start wherever Jest puts it.
  it.each(SLOW_FIRST)('%s exists and is an int test file', (path) => {
    expect(path).toMatch(/\.int-spec\.ts$/);
    expect(existsSync(`${root}${path}`)).toBe(true);
  });
});
