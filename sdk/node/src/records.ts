import { connectionPath } from './connections.js';
import type { Transport } from './http.js';
import type { ConnectionRecord, RecordsPage, RecordType } from './types.js';

export interface ListRecordsOptions {
  /** One record type; omitted: every type the grant covers. */
  type?: RecordType;
  /** Only records changed after this time, deletions included (`deleted: true`). */
  since?: Date | string;
  /** Records per page, 1–500 (the gateway's default is 100). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Top-level fields of `data` to return, e.g. `['name', 'url']`. */
  fields?: string[];
}

/** A connection's synced records: what the person granted your application, nothing else. */
export class RecordsClient {
  constructor(private readonly http: Transport) {}

  /**
   * One page. `syncedAt` says when the source was last read for this connection (null before
   * the first sync): a freshness figure to show or to decide on, not the records' own times.
   */
  list(connectionId: string, options: ListRecordsOptions = {}): Promise<RecordsPage> {
    return this.http.request<RecordsPage>({
      method: 'GET',
      path: `${connectionPath(connectionId)}/records`,
      query: {
        type: options.type,
        since: options.since instanceof Date ? options.since.toISOString() : options.since,
        limit: options.limit,
        cursor: options.cursor,
        fields: options.fields?.join(','),
      },
    });
  }

  /**
   * Every page, following `nextCursor` until the last. Cursors are stable while sync writes,
   * so a walk misses nothing and repeats nothing; a revocation mid-walk throws on the next page.
   */
  async *pages(connectionId: string, options: ListRecordsOptions = {}): AsyncGenerator<RecordsPage, void, undefined> {
    let cursor = options.cursor;
    do {
      const page = await this.list(connectionId, { ...options, cursor });
      yield page;
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }

  /** Every record, page after page (`for await (const record of client.records.iterate(id))`). */
  async *iterate(
    connectionId: string,
    options: ListRecordsOptions = {},
  ): AsyncGenerator<ConnectionRecord, void, undefined> {
    for await (const page of this.pages(connectionId, options)) yield* page.records;
  }
}
