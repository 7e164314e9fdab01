// Worker thread for the differential test: runs Cedar queries (built by cedar-oracle.ts)
// so both cores parse policy sets at once. Plain JS because workers run outside Jest's
// TypeScript transform; it only executes, all translation and interpretation stay in TS.
import { parentPort } from 'node:worker_threads';

import cedar from '@cedar-policy/cedar-wasm/nodejs';

parentPort.on('message', ({ id, queries }) => {
  try {
    const answers = queries.map((query) => {
      const parsed = cedar.preparsePolicySet('worker', { staticPolicies: query.policies });
      if (parsed.type !== 'success') throw new Error(`Cedar rejected the policy set: ${JSON.stringify(parsed.errors)}`);
      return query.calls.map((call) => cedar.statefulIsAuthorized({ ...call, preparsedPolicySetId: 'worker' }));
    });
    parentPort.postMessage({ id, answers });
  } catch (error) {
    parentPort.postMessage({ id, error: String(error) });
  }
});
