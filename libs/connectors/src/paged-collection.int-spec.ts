import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { type CollectionSpec, syncCollection } from './paged-collection.js';
import { SourceHttp } from './source-http.js';
import { MemoryStore } from './testing/memory-store.js';
import { PageServer } from './testing/page-server.js';

interface Item {
  id: number;
  v: number;
}

/** A listing of `items` in pages of three, `next` in the body, as the page server serves it. */
function listing(server: PageServer, items: () => Item[]): void {
  server.answer = (url) => {
    const page = Number(url.searchParams.get('page') ?? '1');
    const all = items();
    const body = all.slice((page - 1) * 3, page * 3);
    const next = page * 3 < all.length ? `${server.url}/items?page=${page + 1}` : null;
    return { body: { items: body, next } };
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
    let firstPages = 0;
    listing(server, () => ids.filter((id) => id !== 4).map((id) => ({ id, v: firstPages >= 2 && id === 7 ? 2 : 1 })));
    const wrapped = server.answer;
    server.answer = (url, headers) => {
      if (url.searchParams.get('page') === '1') firstPages += 1;
      return wrapped(url, headers);
    };
    const writes = new Map<string, number>();
    const counting = {
      ...ctx,
      emit: async (batch: Parameters<typeof ctx.emit>[0]) => {
        for (const r of batch.upserts) writes.set(r.externalId, (writes.get(r.externalId) ?? 0) + 1);
        await store.apply(batch);
      },
    };
    const second = await syncCollection(http, counting, spec, first.state);

    expect(firstPages).toBe(2);
    // Written once each by the first walk; by the second, only the one that changed since.
    expect(Object.fromEntries(writes)).toEqual({ 1: 1, 2: 1, 3: 1, 5: 1, 6: 1, 7: 2, 8: 1, 9: 1 });
    expect(store.live.get('test.item/7')?.data).toEqual({ v: 2 });
    expect(store.tombstones.has('test.item/4')).toBe(true);
    expect(second.deleted).toBe(1);
  });
});
