import fc from 'fast-check';

import { recordIdMaker } from './record-id.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const timeOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

describe('recordIdMaker', () => {
  it('makes version-7 UUIDs carrying the time in milliseconds, each one different', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), (ms) => {
        const next = recordIdMaker(ms);
        const ids = [next(), next(), next()];
        for (const id of ids) {
          expect(id).toMatch(V7);
          expect(timeOf(id)).toBe(ms);
        }
        expect(new Set(ids).size).toBe(3);
      }),
    );
  });

  it('orders ids of a later millisecond after those of an earlier one', () => {
    const earlier = recordIdMaker(Date.UTC(2026, 11, 7, 19, 0, 0, 1));
    const later = recordIdMaker(Date.UTC(2026, 11, 7, 19, 0, 0, 2));
    for (let i = 0; i < 100; i++) expect(later() > earlier()).toBe(true);
  });

  it('clamps a time outside the 48-bit field (a test clock before 1970, or far ahead), and drops fractions', () => {
    expect(timeOf(recordIdMaker(-1)())).toBe(0);
    expect(timeOf(recordIdMaker(2 ** 50)())).toBe(2 ** 48 - 1);
    expect(timeOf(recordIdMaker(12.9)())).toBe(12);
    expect(recordIdMaker(-1)()).toMatch(V7);
  });
});
