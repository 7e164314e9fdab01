/**
 * `pnpm audit:verify --public-key <key>`: recomputes the audit log stored in Postgres and
 * checks it against every signed checkpoint, with the log's public key as the auditor
 * pinned it — never one derived from the signing key, which whoever holds the key file
 * (or the token) could swap together with a rewritten log. Exit 0 when intact; exit 1
 * naming the first entry that was edited, deleted, inserted or reordered, or a checkpoint
 * the pinned key did not sign; exit 2 when it cannot run. Reads DATABASE_URL,
 * DATABASE_SCHEMA and AUDIT_LOG_ORIGIN like the service.
 *
 * `--witness-url <url> --witness-key <verifier key>` also asks the witness (services/witness)
 * for the latest checkpoint it cosigned: the stored log must reach it and match it, so a log
 * cut short — entries and checkpoints deleted together, leaving a valid prefix — or rewritten
 * and re-signed is detected. `--witness-note <file>` does the same with a cosigned checkpoint
 * kept earlier, without asking the witness.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { createPool } from '@context-gateway/database';
import { databaseUrl } from '@context-gateway/service-kit';

import { loadEnv } from '../env.js';
import { parsePinnedKey, type PinnedKey } from './pinned-key.js';
import { openCheckpointKey } from './signing-key.js';
import { verifyStoredLog } from './verify-stored-log.js';
import { checkWitnessedNote, fetchWitnessedCheckpoint, type WitnessedCheckpoint } from './witness-check.js';

const USAGE = `usage: pnpm audit:verify --public-key <verifier key | base64 | PEM | file>
                          [--witness-key <witness verifier key | file> (--witness-url <url> | --witness-note <file>)]
       pnpm audit:verify --dev-key-file    (local development only: trusts the local key file)`;

const { values } = parseArgs({
  options: {
    'public-key': { type: 'string' },
    'dev-key-file': { type: 'boolean', default: false },
    'witness-url': { type: 'string' },
    'witness-key': { type: 'string' },
    'witness-note': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const env = loadEnv();
async function pinnedLogKey(): Promise<PinnedKey> {
  if (values['public-key'] !== undefined) {
    if (values['dev-key-file']) throw new Error('give --public-key or --dev-key-file, not both');
    return parsePinnedKey(values['public-key'], { type: 0x01, defaultName: env.AUDIT_LOG_ORIGIN });
  }
  if (!values['dev-key-file']) {
    throw new Error(
      `no pinned public key. Pass the log's public key as the auditor received it (the service logs it as verifierKey on start).\n${USAGE}`,
    );
  }
  console.error(
    'WARNING --dev-key-file: the public key is derived from the local signing key. Whoever can replace that file and the database can rewrite the log unnoticed; pin the public key (--public-key) anywhere but a development machine.',
  );
  const key = await openCheckpointKey(env, { createIfMissing: false });
  key.signer.close();
  return { publicKey: key.signer.publicKey, name: key.keyName };
}

/** The witness's checkpoint, when asked for; undefined when the witness never cosigned one. */
async function witnessed(log: PinnedKey): Promise<WitnessedCheckpoint | undefined> {
  const { 'witness-url': url, 'witness-key': keyText, 'witness-note': noteFile } = values;
  if (url === undefined && noteFile === undefined && keyText === undefined) return undefined;
  if (keyText === undefined || (url === undefined) === (noteFile === undefined)) {
    throw new Error(`give --witness-key with one of --witness-url or --witness-note\n${USAGE}`);
  }
  const witness = parsePinnedKey(keyText, { type: 0x04 });
  const options = { origin: env.AUDIT_LOG_ORIGIN, witness, log };
  if (noteFile !== undefined) return checkWitnessedNote(readFileSync(noteFile, 'utf8'), options);
  const answer = await fetchWitnessedCheckpoint({ ...options, url: url ?? '' });
  if (answer === undefined)
    console.error(`the witness at ${url} has cosigned no checkpoint of ${env.AUDIT_LOG_ORIGIN}`);
  return answer;
}

const pool = createPool({
  url: databaseUrl(env),
  schema: env.DATABASE_SCHEMA ?? 'audit',
  max: 2,
  applicationName: 'audit-verify',
  statementTimeoutMs: 0,
});
try {
  const pinned = await pinnedLogKey();
  const started = Date.now();
  const witness = await witnessed(pinned);
  if (witness && !witness.ok) {
    console.log(`AUDIT LOG TAMPERED: checkpoint_mismatch at the witness: ${witness.reason}`);
    console.log(JSON.stringify({ ok: false, kind: 'checkpoint_mismatch', detail: witness.reason }));
    process.exit(1);
  }
  const fromWitness = witness?.ok ? [witness.checkpoint] : [];
  const result = await verifyStoredLog(pool, pinned.publicKey, env.AUDIT_LOG_ORIGIN, pinned.name, fromWitness);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const witnessSize = witness?.ok ? witness.checkpoint.treeSize : undefined;
  if (result.ok) {
    console.log(
      `audit log intact: ${result.treeSize} entries, root ${result.rootHash}, ${result.checkpointsMatched} signed checkpoints matched` +
        (witnessSize === undefined ? '' : `, extends the witness's checkpoint of ${witnessSize} entries`) +
        ` (${seconds}s)`,
    );
  } else {
    if (witnessSize !== undefined && result.kind === 'deleted' && result.index < witnessSize) {
      result.detail = `the witness cosigned ${witnessSize} entries: ${result.detail}`;
    }
    console.log(
      `AUDIT LOG TAMPERED: ${result.kind} at index ${result.index}${result.eventId ? ` (event ${result.eventId})` : ''}: ${result.detail}`,
    );
    process.exitCode = 1;
  }
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(`audit:verify failed: ${(error as Error).message}`);
  process.exitCode = 2;
} finally {
  await pool.end();
}
