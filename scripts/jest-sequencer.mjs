// The order Jest starts test files in (jest.config.js `testSequencer`).
//
// The int tier runs on several workers (scripts/test.mjs), and a tier ends when its last file
// does: a file that takes a minute must start first, not be handed out last and run alone
// while the other workers idle. Jest's own order does that only from the durations it cached
// on a previous run on the same machine (else it starts the largest files first, and some
// slow files are small); a fresh CI clone has no such cache. The files jest-slow-first.mjs
// names go first, in that order; the rest keep Jest's order. The unit and e2e tiers run in band, where the order
// does not change when the tier ends, so only int files are named.
import TestSequencer from '@jest/test-sequencer';

import { SLOW_FIRST } from './jest-slow-first.mjs';

export default class SlowFirstSequencer extends TestSequencer {
  async sort(tests) {
    const sorted = await super.sort(tests);
    const rank = (test) => {
      const i = SLOW_FIRST.findIndex((path) => test.path.endsWith(`/${path}`));
      return i === -1 ? SLOW_FIRST.length : i;
    };
    // Array.prototype.sort is stable: within a rank, Jest's order stands.
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}
