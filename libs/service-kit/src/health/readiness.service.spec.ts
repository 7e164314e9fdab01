import { describe, expect, it } from '@jest/globals';

import { ReadinessService } from './readiness.service.js';

describe('ReadinessService', () => {
  it('is ready only when every check is up, and says which one is not', async () => {
    const readiness = new ReadinessService();
    readiness.register('database', () => Promise.resolve({ up: true, detail: '' }));
    readiness.register('nats', () => Promise.resolve({ up: false, detail: 'disconnected, reconnecting' }));
    expect(await readiness.evaluate()).toEqual({
      ready: false,
      checks: [
        { name: 'database', up: true, detail: '' },
        { name: 'nats', up: false, detail: 'disconnected, reconnecting' },
      ],
    });
  });

  it('bounds a check that hangs and reports one that throws', async () => {
    const readiness = new ReadinessService();
    readiness.register('hangs', () => new Promise(() => undefined));
    readiness.register('throws', () => Promise.reject(new Error('boom')));
    const result = await readiness.evaluate(50);
    expect(result.checks).toEqual([
      { name: 'hangs', up: false, detail: 'no answer within 50 ms' },
      { name: 'throws', up: false, detail: 'boom' },
    ]);
  });

  it('turns not-ready once shutdown has begun', async () => {
    const readiness = new ReadinessService();
    readiness.register('database', () => Promise.resolve({ up: true, detail: '' }));
    expect((await readiness.evaluate()).ready).toBe(true);
    readiness.markDraining();
    expect(await readiness.evaluate()).toMatchObject({
      ready: false,
      checks: [
        { name: 'database', up: true },
        { name: 'lifecycle', up: false },
      ],
    });
  });
});
