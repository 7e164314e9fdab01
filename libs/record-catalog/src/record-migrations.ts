import { CATALOG_VERSION, recordType } from './record-types.js';
import { validateRecord } from './validate-record.js';

/**
 * A change to records already stored, run once by every Personal Server for every
 * connection whose records are older than `version`. A migration moves the records of one
 * type to another (same external ids) and may rewrite their bodies; the result must
 * validate against the catalog as it is now. Pure and deterministic: the Personal Server
 * decrypts, calls `migrate`, validates and encrypts again, and a run cut short is simply
 * run again (a record already moved is not found under `from` any more).
 */
export interface RecordMigration {
  /** The catalog version this migration brings stored records to. */
  version: number;
  /** A short name for logs and docs. */
  name: string;
  description: string;
  from: string;
  to: string;
  /** The stored body under `from` → the body under `to` (before validation). */
  migrate(body: Record<string, unknown>): Record<string, unknown>;
}

export const RECORD_MIGRATIONS: readonly RecordMigration[] = [
  {
    version: 3,
    name: 'watch-events-become-play-events',
    description:
      'Netflix viewings were `media.watch_event`; they become `media.play_event` (one play concept for audio and video). Every field keeps its name and meaning; `supplemental` is `false` (supplemental videos were never stored before version 3).',
    from: 'media.watch_event',
    to: 'media.play_event',
    migrate: (body) => ({ ...body, supplemental: false }),
  },
];

/** Migrations a connection at `version` still needs, oldest first. */
export function pendingRecordMigrations(version: number): RecordMigration[] {
  return RECORD_MIGRATIONS.filter((m) => m.version > version).sort((a, b) => a.version - b.version);
}

/** Applies one migration to one stored body; throws invalid_record when the result does not fit `to`. */
export function migrateRecordBody(migration: RecordMigration, body: Record<string, unknown>): Record<string, unknown> {
  return validateRecord(migration.to, migration.migrate(body));
}

/** Every migration's types exist and none goes past the catalog (checked by a unit test and at boot). */
export function assertRecordMigrationsConsistent(): void {
  for (const m of RECORD_MIGRATIONS) {
    if (!recordType(m.from) || !recordType(m.to))
      throw new Error(`record migration ${m.name}: unknown type ${m.from} or ${m.to}`);
    if (m.version > CATALOG_VERSION)
      throw new Error(`record migration ${m.name}: version ${m.version} is past catalog ${CATALOG_VERSION}`);
    if (recordType(m.from)?.retired !== m.version)
      throw new Error(`record migration ${m.name}: ${m.from} must be retired at version ${m.version}`);
  }
}
