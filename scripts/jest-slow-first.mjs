// @ts-check
// The int files scripts/jest-sequencer.mjs starts first; a list of its own so that its test
// (stack/jest-slow-first.spec.ts) reads it without loading Jest's sequencer.

/**
 * Int files, slowest first: the ones that took 30 s or more on average over two runs of the
 * tier on two workers (docs/contributing.md, "Jest workers per tier", per-file table). The
 * next slowest took 26 s or less on average, about 5 % of the tier's wall time: one handed out
 * last costs no more than that, so they keep Jest's order. Paths from the repository root.
 */
export const SLOW_FIRST = [
  'libs/messaging/src/nats-permissions.int-spec.ts', // 63 s, 105 s
  'services/identity/src/rpc-fuzz.int-spec.ts', // 57 s, 96 s
  'services/gateway/src/http/fuzz.int-spec.ts', // 37 s, 50 s
  'services/identity/src/oauth/oauth-cimd.int-spec.ts', // 38 s, 48 s
  'services/audit/src/log/log.int-spec.ts', // 22 s, 41 s
];
