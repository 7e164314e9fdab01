import { TestClock } from '@context-gateway/clock/testing';
import { describe, expect, it, jest } from '@jest/globals';

import { DataKey } from './data-key.js';
import { DataKeyCache } from './data-key-cache.js';
import { WrappedKey } from './wrapped-key.js';

const owner = { org: 'o1', user: 'u1', connection: 'c1' };
const wrappedKey = (n: number) => new WrappedKey('test', 1, Buffer.from([n]));

/** A loader that records calls and can be held open to simulate a slow provider. */
function loader() {
  const calls: Array<(key: DataKey) => void> = [];
  let count = 0;
  return {
    get count() {
      return count;
    },
    immediate: () => {
      count++;
      return Promise.resolve(DataKey.generate());
    },
    held: () => {
      count++;
      return new Promise<DataKey>((resolve) => calls.push(resolve));
    },
    release: () => calls.shift()!(DataKey.generate()),
  };
}

describe('DataKeyCache', () => {
  it('asks again once the TTL has passed', async () => {
    const clock = new TestClock(1_000);
    const cache = new DataKeyCache({ ttlMs: 60_000, clock });
    const load = loader();
    const first = await cache.get(wrappedKey(1), owner, load.immediate);
    clock.advance(59_999);
    expect(await cache.get(wrappedKey(1), owner, load.immediate)).toBe(first);
    clock.advance(2);
    expect(await cache.get(wrappedKey(1), owner, load.immediate)).not.toBe(first);
    expect(load.count).toBe(2);
  });

  it('encodes a WrappedKey once per object; equal bytes are the same key, other bytes or owners not', async () => {
    const cache = new DataKeyCache();
    const load = loader();
    const wrapped = wrappedKey(1);
    const encode = jest.spyOn(wrapped, 'toString');
    const first = await cache.get(wrapped, owner, load.immediate);
    expect(await cache.get(wrapped, owner, load.immediate)).toBe(first);
    expect(await cache.get(wrapped, owner, load.immediate)).toBe(first);
    expect(encode).toHaveBeenCalledTimes(1);
    // Another object with the same bytes is the same key; other bytes or another owner are not.
    expect(await cache.get(wrappedKey(1), owner, load.immediate)).toBe(first);
    expect(await cache.get(wrappedKey(2), owner, load.immediate)).not.toBe(first);
    expect(await cache.get(wrapped, { ...owner, connection: 'c2' }, load.immediate)).not.toBe(first);
    expect(load.count).toBe(3);
  });

  it('serves the same owner in a new context object from the cache; any other entries are another owner', async () => {
    const cache = new DataKeyCache();
    const load = loader();
    const wrapped = wrappedKey(1);
    const first = await cache.get(wrapped, { ...owner }, load.immediate);
    expect(await cache.get(wrapped, { connection: 'c1', user: 'u1', org: 'o1' }, load.immediate)).toBe(first);
    expect(load.count).toBe(1);
    const others: Record<string, string>[] = [
      { ...owner, user: 'u2' },
      { org: 'o1', user: 'u1' },
      { ...owner, purpose: 'p' },
      { org: 'o1', user: 'u1', connectionId: 'c1' },
    ];
    for (const other of others) {
      // The owner again first, so each other context is compared against the owner's memo.
      expect(await cache.get(wrapped, { ...owner }, load.immediate)).toBe(first);
      expect(await cache.get(wrapped, other, load.immediate)).not.toBe(first);
    }
    // Back to the first owner after others: still its key.
    expect(await cache.get(wrapped, { ...owner }, load.immediate)).toBe(first);
    expect(load.count).toBe(1 + others.length);
  });

  it('refuses a context with a value that is not a string, even one shaped like the last owner', async () => {
    const cache = new DataKeyCache();
    const load = loader();
    const wrapped = wrappedKey(1);
    await cache.get(wrapped, owner, load.immediate);
    // As many keys as the last owner, the one it lacks set to undefined (untyped input).
    const shaped = { org: 'o1', user: 'u1', connectionId: undefined } as unknown as Record<string, string>;
    expect(() => cache.get(wrapped, shaped, load.immediate)).toThrow('encryption context field');
    expect(load.count).toBe(1);
  });

  it('keeps at most maxEntries, dropping the least recently used', async () => {
    const cache = new DataKeyCache({ maxEntries: 2 });
    const load = loader();
    await cache.get(wrappedKey(1), owner, load.immediate);
    await cache.get(wrappedKey(2), owner, load.immediate);
    await cache.get(wrappedKey(1), owner, load.immediate); // 1 is now the most recent
    await cache.get(wrappedKey(3), owner, load.immediate); // evicts 2
    expect(cache.size).toBe(2);
    expect(load.count).toBe(3);
    await cache.get(wrappedKey(1), owner, load.immediate);
    expect(load.count).toBe(3);
    await cache.get(wrappedKey(2), owner, load.immediate);
    expect(load.count).toBe(4);
  });

  it('does not cache a failed unwrap', async () => {
    const cache = new DataKeyCache();
    await expect(cache.get(wrappedKey(1), owner, () => Promise.reject(new Error('vault down')))).rejects.toThrow(
      'vault down',
    );
    await expect(cache.get(wrappedKey(1), owner, () => Promise.resolve(DataKey.generate()))).resolves.toBeInstanceOf(
      DataKey,
    );
  });

  it('does not resurrect a key shredded while it was being unwrapped', async () => {
    const cache = new DataKeyCache();
    const load = loader();
    const pending = cache.get(wrappedKey(1), owner, load.held);
    expect(cache.evict(wrappedKey(1), owner)).toBe(true);
    load.release();
    await expect(pending).rejects.toMatchObject({ code: 'key_destroyed' });
    expect(cache.size).toBe(0);
    expect(cache.evict(wrappedKey(1), owner)).toBe(false);
  });

  it('clear destroys every cached key', async () => {
    const cache = new DataKeyCache();
    const key = await cache.get(wrappedKey(1), owner, () => Promise.resolve(DataKey.generate()));
    cache.clear();
    expect(key.destroyed).toBe(true);
    expect(cache.size).toBe(0);
  });
});
