import { TestClock } from '@context-gateway/clock/testing';
import { describe, expect, it } from '@jest/globals';

import { CeremonyStartLimiter } from './start-limiter.js';

describe('CeremonyStartLimiter', () => {
  it('allows the limit per address per minute, refuses beyond it, and forgets after the window', () => {
    const clock = new TestClock(1_000_000);
    const limiter = new CeremonyStartLimiter(3, clock);
    for (let i = 0; i < 3; i++) limiter.take('10.0.0.1');
    expect(() => limiter.take('10.0.0.1')).toThrow(expect.objectContaining({ code: 'rate_limited' }));
    // another address has its own budget
    expect(() => limiter.take('10.0.0.2')).not.toThrow();
    clock.advance(60_000);
    expect(() => limiter.take('10.0.0.1')).not.toThrow();
  });
});
