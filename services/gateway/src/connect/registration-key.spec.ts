import { describe, expect, it } from '@jest/globals';

import { METADATA_DOCUMENT, REGISTRATION_KEY } from './registration-key.js';

describe('registration key patterns', () => {
  const key = 'AbCdEfGhIjKlMnOpQr_-09';

  it('takes a key whole, and nothing around it', () => {
    expect(REGISTRATION_KEY.test(key)).toBe(true);
    expect(REGISTRATION_KEY.test(`${key}.json`)).toBe(false);
    expect(REGISTRATION_KEY.test(`x${key}`)).toBe(false);
    expect(REGISTRATION_KEY.test(key.slice(1))).toBe(false);
  });

  it('takes `<key>.json` as a metadata document, and refuses the key alone or anything around it', () => {
    expect(METADATA_DOCUMENT.test(`${key}.json`)).toBe(true);
    expect(METADATA_DOCUMENT.test(key)).toBe(false);
    expect(METADATA_DOCUMENT.test(`${key}.json.x`)).toBe(false);
    expect(METADATA_DOCUMENT.test(`x${key}.json`)).toBe(false);
    expect(METADATA_DOCUMENT.test(`${key}xjson`)).toBe(false);
    expect(METADATA_DOCUMENT.test(`${key.slice(1)}!.json`)).toBe(false);
  });
});
