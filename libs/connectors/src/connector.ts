/**
 * The one small interface every data source implements. A connector knows its source's
 * API and how to turn what it returns into the unified record schema; it knows nothing
 * about NATS, Postgres, tokens at rest or Personal Servers. The sync-worker runs it.
 */

/** A record in the source-agnostic schema, before the Personal Server encrypts it. */
export interface NormalizedRecord {
  /** A record type of the Personal Server's catalog (`code.repository`, `media.play_event`, ...). */
  type: string;
  /** Stable id at the source: with (connection, type) it is the upsert key, so re-syncs never duplicate. */
  externalId: string;
  /** When the thing happened or last changed at the source (ISO 8601), if the source says. */
  occurredAt?: string;
  /** The normalized body; encrypted at rest. */
  data: Record<string, unknown>;
}

/** An item the source no longer has: becomes a tombstone in the Personal Server. */
export interface DeletedRecord {
  type: string;
  externalId: string;
}

/** What a connector hands over at once; the worker commits it before asking for more. */
export interface SyncBatch {
  upserts: NormalizedRecord[];
  deletes: DeletedRecord[];
}

/**
 * The credential side of a sync. The worker backs it with the connection-broker, which
 * refreshes single-flight; a connector only asks.
 */
export interface AccessTokenSource {
  /** A currently valid access token. */
  current(): Promise<string>;
  /**
   * The source said 401 to `rejected`: get a fresh one (refresh through the broker). Throws
   * `connection_needs_reauth` when the source refused the refresh (invalid_grant).
   */
  refresh(rejected: string): Promise<string>;
}

/**
 * Something a run left out and why: one resource the source refused (a 403 on one
 * playlist), one entry it could not read (a `null` in a list, an item without an id), or a
 * record the store refused. The rest of the run goes on; the worker records these on the run.
 */
export interface SkippedItem {
  /** `forbidden`: the source refused this one resource; `malformed`: an entry we cannot read; `invalid_record`: the catalog refused the normalized record. */
  kind: 'forbidden' | 'malformed' | 'invalid_record';
  /** What was skipped, in the source's terms (`/playlists/{id}/items`, `/me/playlists[3]`) or as `type/externalId`. */
  resource: string;
  /** Why, safe to show (no token, no raw body). */
  reason: string;
}

export interface SyncContext {
  /** The source API's base URL (the real one in production, a simulator in tests). */
  baseUrl: string;
  tokens: AccessTokenSource;
  /**
   * Commits a batch (idempotent upsert + tombstones); resolves once it is durable. Neither
   * side changes the batch's records afterwards: a walk may compare them by reference later
   * (paged-collection.ts).
   */
  emit(batch: SyncBatch): Promise<void>;
  /** Reports an item left out of this run; the run goes on (see SkippedItem). */
  skip(item: SkippedItem): void;
  /** Aborts the sync (worker shutting down). */
  signal?: AbortSignal;
  /** Tuning for the HTTP client: retries, waits. */
  http?: import('./source-http.js').SourceHttpOptions;
}

/**
 * A source connector. `sync(ctx, null)` is a full sync; `sync(ctx, cursor)` is incremental
 * from the cursor a previous run returned. The returned cursor is stored by the worker only
 * after every emitted batch is committed, so a run that dies half-way is simply run again
 * from the old cursor: upserts are idempotent, so nothing is lost and nothing duplicated.
 */
export interface Connector {
  readonly integration: string;
  /** Every record type `sync` may emit: exactly what the integration's data scopes promise (a test checks). */
  readonly produces: readonly string[];
  sync(ctx: SyncContext, cursor: unknown): Promise<unknown>;
}
