// The bare baseline of `pnpm bench:query`: the least a server must do to answer the same
// question — one SQL read of the same encrypted rows, AES-256-GCM decryption with the same
// data keys, JSON out — with no auth, no policy, no audit, no NATS hop, no framework.
// Started by query.bench.mjs as its own process (env: DATABASE_URL, DATABASE_SCHEMA,
// MASTER_KEY_FILE, DATA_KEY_DIR); prints its port on stdout.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';

import { encodeContext, EnvelopeCipher, LocalKeyProvider, WrappedKey } from '@context-gateway/crypto';
import pg from 'pg';

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: 10,
  // Never let an idle connection go (pg's default is after 10 s): between this server's runs
  // the bench drives the gateway, and a backend opened again would cost its start-up in the
  // next run, which the shards' pools (30 s) mostly do not pay.
  idleTimeoutMillis: 0,
  options: `-c search_path=${process.env.DATABASE_SCHEMA}`,
});
const provider = await LocalKeyProvider.open({ path: process.env.MASTER_KEY_FILE });
const cipher = new EnvelopeCipher(provider);
/** connectionId → { personalServerId, userId, wrapped } (the same facts the shard caches). */
const connections = new Map();

async function connection(id) {
  let c = connections.get(id);
  if (!c) {
    const { rows } = await pool.query(
      'SELECT personal_server_id, user_id, data_key_id FROM connections WHERE id = $1',
      [id],
    );
    if (!rows[0]) return undefined;
    const wrapped = WrappedKey.decode(
      (await readFile(join(process.env.DATA_KEY_DIR, `${rows[0].data_key_id}.key`), 'utf8')).trim(),
    );
    c = { personalServerId: rows[0].personal_server_id, userId: rows[0].user_id, wrapped };
    connections.set(id, c);
  }
  return c;
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://x');
    const id = url.pathname.split('/')[2];
    const type = url.searchParams.get('type');
    const limit = Number(url.searchParams.get('limit') ?? 20);
    const c = await connection(id);
    if (!c) {
      res.writeHead(404).end();
      return;
    }
    const key = await cipher.openDataKey(c.wrapped, {
      purpose: 'ps.records',
      personalServer: c.personalServerId,
      connection: id,
      user: c.userId,
    });
    const { rows } = await pool.query({
      name: 'baseline_page',
      text: 'SELECT id, type, external_id, ciphertext, source_updated_at, updated_at FROM records WHERE connection_id = $1 AND type = $2 AND deleted_at IS NULL ORDER BY version LIMIT $3',
      values: [id, type, limit],
    });
    const parts = rows.map((r) => {
      const data = key
        .decrypt(r.ciphertext, encodeContext({ ps: c.personalServerId, connection: id, record: r.id, type: r.type }))
        .toString('utf8');
      return `{"id":"${r.id}","type":${JSON.stringify(r.type)},"externalId":${JSON.stringify(r.external_id)},"updatedAt":"${r.updated_at.toISOString()}","sourceUpdatedAt":"${r.source_updated_at.toISOString()}","deleted":false,"data":${data}}`;
    });
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(`{"records":[${parts.join(',')}],"nextCursor":null,"syncedAt":null}`);
  } catch (error) {
    res.writeHead(500).end(String(error));
  }
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => server.close(() => pool.end().then(() => process.exit(0))));
