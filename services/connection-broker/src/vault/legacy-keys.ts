import type { Logger } from 'pino';

import type { CredentialVault } from './credential-vault.js';

/** The two repository calls the move needs (ConnectionsRepository). */
interface LegacyKeyRows {
  legacyWrappedKeys(limit: number): Promise<{ id: string; wrappedDataKey: Uint8Array }[]>;
  adoptMovedKey(id: string, dataKeyId: string): Promise<boolean>;
}

const BATCH = 500;

/**
 * Before #12 the broker kept each connection's wrapped data key in its own table, so a
 * database backup was enough (with the KEK) to open a deleted connection's token. At
 * startup, before serving, every such key is written to the key store and the row switched
 * to its id, one row at a time: each step is safe to repeat, and replicas starting together
 * each keep the row only one of them adopted (the loser's copy is discarded). Backups taken
 * before the move still hold the keys: rotate them out (docs/operations.md, "Keys").
 */
export async function moveLegacyKeys(vault: CredentialVault, rows: LegacyKeyRows, logger: Logger): Promise<number> {
  let moved = 0;
  for (;;) {
    const batch = await rows.legacyWrappedKeys(BATCH);
    if (batch.length === 0) break;
    for (const row of batch) {
      const dataKeyId = await vault.storeLegacyKey(row.wrappedDataKey);
      if (await rows.adoptMovedKey(row.id, dataKeyId)) moved += 1;
      else await vault.discard(dataKeyId);
    }
  }
  if (moved > 0) logger.info({ moved }, 'moved connections’ wrapped data keys out of the database into the key store');
  return moved;
}
