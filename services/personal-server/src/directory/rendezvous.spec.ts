import { randomUUID } from 'node:crypto';

import { rendezvousShard } from './rendezvous.js';

describe('rendezvous placement', () => {
  const users = Array.from({ length: 4_000 }, () => randomUUID());

  it('is stable: the same user always lands on the same shard', () => {
    for (const user of users.slice(0, 50)) expect(rendezvousShard(user, 4)).toBe(rendezvousShard(user, 4));
  });

  it('spreads users roughly evenly', () => {
    const counts = [0, 0, 0, 0];
    for (const user of users) counts[rendezvousShard(user, 4)]! += 1;
    for (const count of counts) expect(count).toBeGreaterThan(800); // 1,000 expected each
  });

  it('growing from 3 to 4 shards moves only users onto the new shard, about a quarter of them', () => {
    let moved = 0;
    for (const user of users) {
      const before = rendezvousShard(user, 3);
      const after = rendezvousShard(user, 4);
      if (before !== after) {
        moved += 1;
        expect(after).toBe(3);
      }
    }
    expect(moved).toBeGreaterThan(800);
    expect(moved).toBeLessThan(1_200);
  });
});
