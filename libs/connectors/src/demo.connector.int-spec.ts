import { AppError } from '@context-gateway/errors';
import { validateRecord } from '@context-gateway/record-catalog';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AccessTokenSource } from './connector.js';
import { DemoConnector, type DemoCursor } from './demo.connector.js';
import { connectorFor } from './registry.js';
import { MemoryStore } from './testing/memory-store.js';

/**
 * The demo sources' connector against the demo simulator over HTTP (the API `pnpm demo`
 * serves), with a personal API key as the bearer credential, as the Demo Keys integration
 * holds it.
 */
describe('DemoConnector against the demo simulator', () => {
  let sim: RunningSimulator;
  let key: string;
  const login = 'noter';
  const http = { maxWaitMs: 5_000, backoffBaseMs: 20 };
  const keyTokens = (k: () => string): AccessTokenSource => ({
    current: () => Promise.resolve(k()),
    refresh: () => Promise.reject(new AppError('connection_needs_reauth', 'the API key was refused')),
  });

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'demo' });
    await sim.control.createAccount({ login, counts: { items: 230 } });
    key = (await sim.control.createApiKey(login)).key;
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  it('both demo integrations are synced by pulling', () => {
    expect(connectorFor('demo')).toBeInstanceOf(DemoConnector);
    expect(connectorFor('demo-keys')).toBeInstanceOf(DemoConnector);
  });

  it('a full sync walks every cursor page into catalog-valid notes and the profile', async () => {
    const store = new MemoryStore();
    const cursor = await new DemoConnector('demo', true).sync(
      { baseUrl: `${sim.url}/api`, tokens: keyTokens(() => key), emit: store.apply, skip: store.skip, http },
      null,
    );
    expect(store.count('document.note')).toBe(230);
    expect(store.count('profile')).toBe(1);
    expect(cursor.notes!.pages).toHaveLength(3);
    expect(store.skipped).toEqual([]);
    for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
    const first = store.of('document.note')[0]!;
    expect(first.data).toMatchObject({ source: 'demo', title: expect.any(String), tags: expect.any(Array) });
  }, 30_000);

  it('the next run picks up an added note and tombstones a deleted one', async () => {
    const store = new MemoryStore();
    const connector = new DemoConnector('demo-keys', false);
    const ctx = { baseUrl: `${sim.url}/api`, tokens: keyTokens(() => key), emit: store.apply, skip: store.skip, http };
    let cursor: DemoCursor = await connector.sync(ctx, null);
    expect(store.count('profile')).toBe(0);
    const notes = (await sim.control.list<{ id: string }>(login, 'items')).items;
    const gone = notes[150]!;
    await sim.control.deleteItem(login, 'items', gone.id);
    const added = await sim.control.addItem<{ id: string }>(login, 'items', { title: 'a brand new note' });
    cursor = await connector.sync(ctx, cursor);
    expect(store.live.get(`document.note/${added.id}`)?.data).toMatchObject({ title: 'a brand new note' });
    expect(store.tombstones.has(`document.note/${gone.id}`)).toBe(true);
    expect(store.count('document.note')).toBe(230);
    expect(cursor.notes!.pages.length).toBeGreaterThan(0);
  }, 30_000);

  it('a revoked API key ends the run with connection_needs_reauth, not a generic error', async () => {
    const revoked = (await sim.control.createApiKey(login)).key;
    await sim.control.revokeApiKey(revoked);
    const store = new MemoryStore();
    await expect(
      new DemoConnector('demo-keys', false).sync(
        { baseUrl: `${sim.url}/api`, tokens: keyTokens(() => revoked), emit: store.apply, skip: store.skip, http },
        null,
      ),
    ).rejects.toMatchObject({ code: 'connection_needs_reauth' });
  }, 30_000);
});
