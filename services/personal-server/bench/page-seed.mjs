// The page benches' shard (page-statement.bench.mjs, grant-lookup.bench.mjs): one shard-0 user
// per connection, an active grant of one app on it, `records` records of one type each (a
// bench:query playlist's size), analyzed.
import { randomBytes, randomUUID } from 'node:crypto';

export const PAGE_TYPE = 'media.playlist';

/** Seeds `connections` connections into the test schema's pool; returns the org, app and connection ids. */
export async function seedPageShard(pool, { connections: count, records }) {
  const org = randomUUID();
  const app = randomUUID();
  const connections = [];
  for (let c = 0; c < count; c += 1) {
    const userId = randomUUID();
    const psId = randomUUID();
    const connectionId = randomUUID();
    await pool.query('INSERT INTO personal_servers (id, user_id, shard) VALUES ($1, $2, 0)', [psId, userId]);
    await pool.query(
      `INSERT INTO connections (id, personal_server_id, user_id, integration, data_key_id, last_version, synced_at, records_version)
       VALUES ($1, $2, $3, 'spotify', $4, $5, now(), 99)`,
      [connectionId, psId, userId, randomUUID(), records],
    );
    await pool.query(
      `INSERT INTO grants (id, connection_id, org_id, application_id, user_id, scopes, types, state, updated_at, seal, consent_nonce)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', now(), $8, $9)`,
      [
        randomUUID(),
        connectionId,
        org,
        app,
        userId,
        ['spotify:read:playlists'],
        [PAGE_TYPE],
        randomBytes(32),
        randomUUID(),
      ],
    );
    // Ciphertexts of a bench:query playlist's size (~300 bytes of JSON, 28 of IV and tag).
    const ids = Array.from({ length: records }, () => randomUUID());
    await pool.query(
      `INSERT INTO records (id, personal_server_id, connection_id, type, external_id, ciphertext, body_digest, source_updated_at, updated_at, version)
       SELECT id, $1, $2, $3, 'pl-' || n, ct, digest, now() - n * interval '1 minute', clock_timestamp(), n
         FROM unnest($4::uuid[], $5::bytea[], $6::bytea[]) WITH ORDINALITY AS k(id, ct, digest, n)`,
      [psId, connectionId, PAGE_TYPE, ids, ids.map(() => randomBytes(330)), ids.map(() => randomBytes(32))],
    );
    connections.push(connectionId);
  }
  await pool.query('ANALYZE');
  return { org, app, connections };
}

/** The page bench:query asks for (RecordsRepository#page): one type, from the start (no tombstones), 20 records. */
export function pageQuery({ org, app }, connectionId) {
  return {
    shard: 0,
    orgId: org,
    applicationId: app,
    connectionId,
    type: PAGE_TYPE,
    policyTypes: undefined,
    since: undefined,
    afterVersion: 0n,
    limit: 20,
    includeDeleted: false,
  };
}
