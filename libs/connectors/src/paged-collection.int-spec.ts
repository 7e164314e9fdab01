import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { type CollectionSpec, syncCollection } from './paged-collection.js';
import { SourceHttp } from './source-http.js';
import { MemoryStore } from './testing/memory-store.js';
import { PageServer } from './testing/page-server.js';

interface Item {
  id: number;
  v: number;
}

/** A listing of `items` in pages of `size` (three), `next` in the body, as the page server serves it. */
function listing(server: PageServer, items: () => Item[], size = 3): void {
  server.answer = (url) => {
    const page = Number(url.searchParams.get('page') ?? '1');
    const all = items();
    const body = all.slice((page - 1) * size, page * size);
    const next = page * size < all.length ? `${server.url}/items?page=${page + 1}` : null;
    return { body: { items: body, next } };
  };
}

/** Counts the walks of the listing (each asks for its first page once) in `count`, from now on. */
function countWalks(server: PageServer, count = { walks: 0 }): { walks: number } {
  const wrapped = server.answer;
  server.answer = (url, headers) => {
    if (url.searchParams.get('page') === '1') count.walks += 1;
    return wrapped(url, headers);
  };
  return count;
}

/** The context, writing into `store` and counting the writes of each id in `writes`. */
function counting(server: PageServer, store: MemoryStore, writes: Map<string, number>) {
  const ctx = server.context(store);
  return {
    ...ctx,
    emit: async (batch: Parameters<typeof ctx.emit>[0]) => {
      for (const r of batch.upserts) writes.set(r.externalId, (writes.get(r.externalId) ?? 0) + 1);
      await store.apply(batch);
    },
  };
}

const spec: CollectionSpec<Item> = {
  firstPage: '/items?page=1',
  type: 'test.item',
  conditional: false,
  items: (body) => (body as { items: Item[] }).items,
  next: (body) => (body as { next: string | null }).next ?? undefined,
  normalize: (i) => ({ type: 'test.item', externalId: String(i.id), data: { v: i.v } }),
};

describe('syncCollection', () => {
  const server = new PageServer();
  beforeAll(() => server.start());
  afterAll(() => server.stop());

  it('walks again when an id is missed, writing only what changed since the first walk', async () => {
    const ids = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    listing(server, () => ids.map((id) => ({ id, v: 0 })));
    const store = new MemoryStore();
    const ctx = server.context(store);
    const http = new SourceHttp(ctx.baseUrl, ctx.tokens, ctx.http);
    const first = await syncCollection(http, ctx, spec, undefined);
    expect(store.upserts).toBe(9);

    // The next run: item 4 is gone and every body changed; between the first and the second
    // walk item 7 changes again. Each walk is told apart by its request of the first page.
    const count = { walks: 0 };
    listing(server, () => ids.filter((id) => id !== 4).map((id) => ({ id, v: count.walks >= 2 && id === 7 ? 2 : 1 })));
    countWalks(server, count);
    const writes = new Map<string, number>();
    const second = await syncCollection(http, counting(server, store, writes), spec, first.state);

    expect(count.walks).toBe(2);
    // Written once each by the first walk; by the second, only the one that changed since.
    expect(Object.fromEntries(writes)).toEqual({ 1: 1, 2: 1, 3: 1, 5: 1, 6: 1, 7: 2, 8: 1, 9: 1 });
    expect(store.live.get('test.item/7')?.data).toEqual({ v: 2 });
    expect(store.tombstones.has('test.item/4')).toBe(true);
    expect(second.deleted).toBe(1);
  });

  it('walks a first sync once, writing each record once', async () => {
    const ids = Array.from({ length: 30 }, (_, n) => n + 1);
    listing(server, () => ids.map((id) => ({ id, v: 0 })));
    const count = countWalks(server);
    const store = new MemoryStore();
    const writes = new Map<string, number>();
    const ctx = counting(server, store, writes);
    const run = await syncCollection(new SourceHttp(ctx.baseUrl, ctx.tokens, ctx.http), ctx, spec, undefined);
    expect(count.walks).toBe(1);
    expect([...writes.values()]).toEqual(ids.map(() => 1));
    expect(run).toMatchObject({ upserted: 30, deleted: 0, state: { pages: expect.any(Array) as unknown } });
    expect(run.state.missed).toBeUndefined();
  });

  it('tells what changed between the walks past the bodies it keeps by reference', async () => {
    // 3,000 records: more than the first walk keeps by reference, so what it kept is digested
    // part-way through and the rest remembered as digests; changes on either side are found.
    const ids = Array.from({ length: 3000 }, (_, n) => n + 1);
    listing(server, () => ids.map((id) => ({ id, v: 0 })), 250);
    const store = new MemoryStore();
    const ctx = server.context(store);
    const http = new SourceHttp(ctx.baseUrl, ctx.tokens, ctx.http);
    const first = await syncCollection(http, ctx, spec, undefined);

    // The next run: item 4 is gone, every body changed; between the walks 7 (kept by
    // reference at first) and 2,900 (digested from the start) change again.
    const count = { walks: 0 };
    const again = new Set(['7', '2900']);
    listing(
      server,
      () => ids.filter((id) => id !== 4).map((id) => ({ id, v: count.walks >= 2 && again.has(String(id)) ? 2 : 1 })),
      250,
    );
    countWalks(server, count);
    const writes = new Map<string, number>();
    const second = await syncCollection(http, counting(server, store, writes), spec, first.state);

    expect(count.walks).toBe(2);
    const twice = [...writes].filter(([, n]) => n !== 1).map(([id, n]) => `${id}:${n}`);
    expect(twice).toEqual(['7:2', '2900:2']);
    expect(writes.size).toBe(2999);
    expect(store.live.get('test.item/2900')?.data).toEqual({ v: 2 });
    expect(second.deleted).toBe(1);
  });
});
