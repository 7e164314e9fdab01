import { describe, expect, it } from '@jest/globals';

import { checkReplicas } from './jetstream-streams.js';

describe('stream replicas on redeploy', () => {
  it('keeps or raises the replica count', () => {
    expect(() => checkReplicas('AUDIT', 1, 1)).not.toThrow();
    expect(() => checkReplicas('AUDIT', 1, 3)).not.toThrow();
    expect(() => checkReplicas('AUDIT', 3, 3)).not.toThrow();
  });

  it('refuses to lower it, naming the stream and both counts', () => {
    expect(() => checkReplicas('AUDIT', 3, 1)).toThrow(
      /AUDIT has 3 replicas and this bootstrap asks for 1: refusing to lower it \(set NATS_STREAM_REPLICAS=3/,
    );
  });
});
