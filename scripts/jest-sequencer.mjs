// The order Jest starts test files in (jest.config.js `testSequencer`).
//
// With two workers a tier ends when its last file does, so a file that takes minutes must
// start first, not be handed out last and run alone while the other worker idles. Jest's
// own order does that only from the durations it cached on a previous run on the same
// machine (else it starts the largest files first); a fresh CI clone has no such cache.
// Files named here go first, in this order; the rest keep Jest's order.
import TestSequencer from '@jest/test-sequencer';

/** Paths from the repository root, slowest first (docs/contributing.md, "The suite's time"). */
const SLOW_FIRST = [
  // unit: 100,000 cases against Cedar (on two worker threads of its own).
  'libs/policy-engine/src/differential.spec.ts',
  // int: the slowest files, 20-60 s each with two workers at load 15, some of them small
  // (Jest's fallback order, largest file first, would hand them out last).
  'libs/messaging/src/nats-permissions.int-spec.ts',
  'services/identity/src/rpc-fuzz.int-spec.ts',
  'services/identity/src/oauth/oauth-cimd.int-spec.ts',
  'services/gateway/src/http/fuzz.int-spec.ts',
  'services/connection-broker/src/connect/connect-flow.int-spec.ts',
  'services/audit/src/rpc-fuzz.int-spec.ts',
  'services/policy/src/rpc-fuzz.int-spec.ts',
];

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
