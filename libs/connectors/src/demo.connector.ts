import { AppError } from '@context-gateway/errors';

import { compact } from './compact.js';
import type { Connector, NormalizedRecord, SyncContext } from './connector.js';
import { type CollectionState, syncCollection } from './paged-collection.js';
import { SourceHttp } from './source-http.js';

/** The demo source's profile (`GET /api/profile`). */
interface DemoProfile {
  id: string;
  username: string;
  name?: string | null;
  email?: string | null;
}
/** One note of `GET /api/items` (`{ items, nextCursor }`, cursor-paginated in id order). */
interface DemoItem {
  id: string;
  title: string;
  body?: string | null;
  tags?: (string | null)[] | null;
  createdAt?: string | null;
  updatedAt?: string | null;
}

export interface DemoCursor {
  v: 1;
  notes?: CollectionState;
}

const PAGE_SIZE = 100;

/** Demo objects → the record catalog's shapes (libs/record-catalog). */
const demoNormalize = {
  profile: (integration: string, p: DemoProfile): NormalizedRecord => ({
    type: 'profile',
    externalId: String(p.id),
    data: compact({ source: integration, id: String(p.id), displayName: p.name, handle: p.username, email: p.email }),
  }),
  note: (integration: string, n: DemoItem): NormalizedRecord => {
    if (typeof n.id !== 'string' || n.id === '') throw new Error('the note has no id');
    if (typeof n.title !== 'string') throw new Error(`note ${n.id} has no title`);
    return {
      type: 'document.note',
      externalId: n.id,
      ...(n.updatedAt ? { occurredAt: n.updatedAt } : {}),
      data: compact({
        source: integration,
        id: n.id,
        title: n.title,
        body: n.body,
        tags: (n.tags ?? []).filter((t): t is string => typeof t === 'string' && t !== ''),
        createdAt: n.createdAt,
        updatedAt: n.updatedAt,
      }),
    };
  },
};

const itemsOf = (body: unknown): (DemoItem | null)[] => {
  const items = (body as { items?: unknown } | undefined)?.items;
  return Array.isArray(items) ? (items as (DemoItem | null)[]) : [];
};

/**
 * The demo sources (Demo Notes over OAuth, Demo Keys over a personal API key: the same API):
 * the profile, and every note walked in full with the opaque `nextCursor`, so a note deleted at
 * the source becomes a tombstone. The API has no conditional requests, so every run lists all.
 */
export class DemoConnector implements Connector {
  readonly produces: readonly string[];

  constructor(
    readonly integration: string,
    private readonly withProfile: boolean,
  ) {
    this.produces = withProfile ? ['profile', 'document.note'] : ['document.note'];
  }

  async sync(ctx: SyncContext, cursor: unknown): Promise<DemoCursor> {
    const prev = isDemoCursor(cursor) ? cursor : undefined;
    const http = new SourceHttp(ctx.baseUrl, ctx.tokens, ctx.http, ctx.signal);
    if (this.withProfile) {
      try {
        const me = await http.get<DemoProfile>('/profile');
        if (me.body) await ctx.emit({ upserts: [demoNormalize.profile(this.integration, me.body)], deletes: [] });
      } catch (error) {
        // The person did not grant the profile scope at the source: the notes still come.
        if (!(error instanceof AppError) || error.code !== 'forbidden') throw error;
        ctx.skip({ kind: 'forbidden', resource: '/profile', reason: error.message });
      }
    }
    const notes = await syncCollection(
      http,
      ctx,
      {
        firstPage: `/items?limit=${PAGE_SIZE}`,
        type: 'document.note',
        conditional: false,
        items: itemsOf,
        resource: '/items',
        next: (body) => {
          const c = (body as { nextCursor?: unknown } | undefined)?.nextCursor;
          return typeof c === 'string' && c !== ''
            ? `/items?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(c)}`
            : undefined;
        },
        normalize: (item) => demoNormalize.note(this.integration, item),
      },
      prev?.notes,
    );
    return { v: 1, notes: notes.state };
  }
}

function isDemoCursor(value: unknown): value is DemoCursor {
  return typeof value === 'object' && value !== null && (value as { v?: unknown }).v === 1;
}
