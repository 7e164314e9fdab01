/**
 * One account's list of items of one kind (repositories, playlists, ...), kept in a Map
 * so add/modify/delete are O(1), with sorted views cached until the next change: a
 * 100k-item collection is sorted once per change, not once per page request.
 */
export class Collection<T extends { id: string | number }> {
  private readonly byId = new Map<string, T>();
  private readonly views = new Map<string, T[]>();
  /** Next index for generated items; seeded items use 0..n-1. */
  nextIndex = 0;

  get size(): number {
    return this.byId.size;
  }

  get(id: string | number): T | undefined {
    return this.byId.get(String(id));
  }

  put(item: T): void {
    this.byId.set(String(item.id), item);
    this.views.clear();
  }

  delete(id: string | number): T | undefined {
    const item = this.byId.get(String(id));
    if (item) {
      this.byId.delete(String(id));
      this.views.clear();
    }
    return item;
  }

  clear(): void {
    this.byId.clear();
    this.views.clear();
    this.nextIndex = 0;
  }

  values(): IterableIterator<T> {
    return this.byId.values();
  }

  /** Items ordered by `key` (ties broken by id), cached per (key, direction) until a change. */
  sorted(key: string, direction: 'asc' | 'desc', value: (item: T) => string | number): T[] {
    const cacheKey = `${key}:${direction}`;
    let view = this.views.get(cacheKey);
    if (!view) {
      const sign = direction === 'asc' ? 1 : -1;
      view = [...this.byId.values()].sort((x, y) => {
        const a = value(x);
        const b = value(y);
        if (a < b) return -sign;
        if (a > b) return sign;
        const ia = x.id;
        const ib = y.id;
        return ia < ib ? -sign : ia > ib ? sign : 0;
      });
      this.views.set(cacheKey, view);
    }
    return view;
  }
}
