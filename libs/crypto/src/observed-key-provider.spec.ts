import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { EnvelopeCipher } from './envelope-cipher.js';
import { LocalKeyProvider } from './local-key-provider.js';
import type { KeyOperation } from './observed-key-provider.js';

const alice = { org: 'o1', user: 'alice', connection: 'c1' };
const bob = { org: 'o1', user: 'bob', connection: 'c2' };

let dir: string;
let local: LocalKeyProvider;
beforeAll(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'cg-observed-'));
  local = await LocalKeyProvider.open({ path: join(dir, 'keyring.json'), createIfMissing: true });
});
afterAll(async () => {
  local.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('EnvelopeCipher with a key-operation observer', () => {
  it('reports each provider call with its duration, and a refused unwrap as failed', async () => {
    const seen: KeyOperation[] = [];
    const cipher = new EnvelopeCipher(local, { observer: { keyOperation: (e) => seen.push(e) } });
    const { key, wrapped } = await cipher.generateDataKey(alice);
    key.destroy();
    await cipher.openDataKey(wrapped, alice);
    await cipher.openDataKey(wrapped, alice); // served from the cache: no provider call
    await expect(cipher.openDataKey(wrapped, bob)).rejects.toMatchObject({ code: 'decryption_failed' });
    await cipher.rewrap(wrapped, alice);

    expect(seen.map(({ operation, ok, provider }) => ({ operation, ok, provider }))).toEqual([
      { operation: 'wrap', ok: true, provider: local.id },
      { operation: 'unwrap', ok: true, provider: local.id },
      { operation: 'unwrap', ok: false, provider: local.id },
      { operation: 'rewrap', ok: true, provider: local.id },
    ]);
    for (const event of seen) expect(event.seconds).toBeGreaterThanOrEqual(0);
  });
});
