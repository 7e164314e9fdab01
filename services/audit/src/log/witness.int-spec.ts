import 'reflect-metadata';

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { create } from '@bufbuild/protobuf';
import { createPool } from '@context-gateway/database';
import {
  encodeAddCheckpointRequest,
  encodeVerifierKey,
  parseVerifierKey,
  signCheckpointWith,
  verifyCheckpoint,
  verifyCosignature,
} from '@context-gateway/merkle-log';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events, GetCheckpointRequestSchema } from '@context-gateway/proto';
import { Metrics } from '@context-gateway/service-kit';
import { loadEnv as loadWitnessEnv, type RunningWitness, startWitness } from '@context-gateway/witness';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestingModule } from '@nestjs/testing';

import { loadEnv } from '../env.js';
import { LogModule } from './log.module.js';
import { LogRepository } from './log.repository.js';
import { LogQueryService } from './log-query.service.js';
import { openCheckpointKey } from './signing-key.js';
import {
  auditTestEvent,
  type LogTestBed,
  startAuditInstance,
  startLogTestBed,
  testLogger,
} from './testing/log-test-kit.js';
import { verifyStoredLog } from './verify-stored-log.js';
import { WitnessMetrics } from './witness.metrics.js';
import { fetchWitnessedCheckpoint } from './witness-check.js';
import { WitnessSubmitter } from './witness-submitter.js';

const ORG = '0b0e6a3c-3333-4a7b-9c55-0d6f3f9c2a11';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('audit checkpoints cosigned by a witness outside the database (C2SP tlog-witness)', () => {
  const logger = testLogger();
  const scratch = mkdtempSync(join(tmpdir(), 'audit-witness-'));
  let bed: LogTestBed;
  let witness: RunningWitness;
  let audit: TestingModule;
  let logKey: { publicKey: import('node:crypto').KeyObject; name: string };
  let witnessKey: { publicKey: import('node:crypto').KeyObject; name: string };
  let published = 0;
  let logVerifierKey: string;

  async function publish(n: number): Promise<void> {
    const publisher = new JetStreamPublisher(bed.nc);
    await Promise.all(
      Array.from({ length: n }, (_, i) => publisher.publish(events.auditRecorded, auditTestEvent(published + i, ORG))),
    );
    published += n;
  }

  /** One sample of the audit instance's metrics: the line of `name` carrying every label given. */
  async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const text = await audit.get(Metrics).registry.metrics();
    const found = text
      .split('\n')
      .find(
        (l) =>
          (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) &&
          Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
      );
    return Number(found?.split(' ').at(-1) ?? Number.NaN);
  }

  /** Waits until the witness holds the log at `size` and the cosignature is stored. */
  async function waitForWitness(size: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const held = (await witness.witness.latest(bed.env.AUDIT_LOG_ORIGIN))?.treeSize;
      const stored = await LogRepository.latestCosignedSize(bed.db.pool, witnessKey.name);
      if (held === size && stored === size) return;
      if (Date.now() > deadline) throw new Error(`witness at ${held}, stored cosignature at ${stored}, wanted ${size}`);
      await sleep(50);
    }
  }

  beforeAll(async () => {
    bed = await startLogTestBed({ prefix: 'audit_witness', logger });
    // The log's key exists before the witness is told to trust it, as an operator would do it.
    const key = await openCheckpointKey(bed.env, { createIfMissing: true });
    key.signer.close();
    logKey = { publicKey: key.signer.publicKey, name: key.keyName };
    logVerifierKey = key.verifierKey;
    witness = await startWitness(
      loadWitnessEnv({
        WITNESS_NAME: 'witness.audit-test/w1',
        WITNESS_LOG_KEYS: logVerifierKey,
        WITNESS_STATE_DIR: join(scratch, 'state'),
        WITNESS_SIGNING_KEY_FILE: join(scratch, 'witness.key'),
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
      }),
    );
    witnessKey = parseVerifierKey(witness.verifierKey);
    const env = loadEnv({
      DATABASE_URL: bed.env.DATABASE_URL,
      NATS_URL: bed.env.NATS_URL,
      MASTER_KEY_FILE: bed.env.MASTER_KEY_FILE,
      AUDIT_BATCH_SIZE: '300',
      AUDIT_BATCH_WAIT_MS: '20',
      AUDIT_DECODE_THREADS: '0',
      AUDIT_CHECKPOINT_INTERVAL_MS: '150',
      AUDIT_STANDBY_POLL_MS: '100',
      AUDIT_WITNESS_URL: witness.url,
      AUDIT_WITNESS_KEY: witness.verifierKey,
      AUDIT_WITNESS_RETRY_MS: '200',
    });
    audit = await startAuditInstance({ pool: bed.db.pool, nc: bed.nc, env, logger, imports: [LogModule] });
  }, 30_000);

  afterAll(async () => {
    await audit?.close().catch(() => undefined);
    await witness?.close().catch(() => undefined);
    await bed?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('submits each signed checkpoint with a consistency proof and stores the verified cosignature', async () => {
    await publish(300);
    await waitForWitness(300);
    await publish(457);
    await waitForWitness(757);

    const [line] = await LogRepository.cosignatureLines(bed.db.pool, 757);
    const { rows } = await bed.db.pool.query<{ note: string }>('SELECT note FROM checkpoints WHERE tree_size = 757');
    expect(verifyCosignature(rows[0]!.note + line!, witnessKey.publicKey, witnessKey.name)).toMatchObject({ ok: true });
    // What the witness holds is this log's own signed checkpoint.
    const held = await fetchWitnessedCheckpoint({
      url: witness.url,
      origin: bed.env.AUDIT_LOG_ORIGIN,
      witness: witnessKey,
      log: logKey,
    });
    expect(held).toMatchObject({ ok: true, checkpoint: { treeSize: 757 } });
    expect(verifyCheckpoint(rows[0]!.note, logKey.publicKey).ok).toBe(true);

    // Served checkpoints carry the cosignature: the log's key and the witness's both verify the note.
    const served = await audit
      .get(LogQueryService)
      .getCheckpoint(create(GetCheckpointRequestSchema, { treeSize: 757n }));
    const note = served.checkpoint.signedNote!;
    expect(note).toBe(rows[0]!.note + line!);
    expect(verifyCheckpoint(note, logKey.publicKey).ok).toBe(true);
    expect(verifyCosignature(note, witnessKey.publicKey, witnessKey.name).ok).toBe(true);

    expect(await metric('audit_witness_lag_entries')).toBe(0);
    expect(await metric('audit_witness_submissions_total', { outcome: 'cosigned' })).toBeGreaterThanOrEqual(2);
  }, 40_000);

  it('the witness detects a log cut short together with its checkpoints, which the log alone cannot', async () => {
    const copy = `${bed.db.schema}_cut`;
    await bed.db.pool.query(
      `CREATE SCHEMA ${copy};
       CREATE TABLE ${copy}.audit_entries AS SELECT * FROM audit_entries WHERE seq < 500;
       CREATE TABLE ${copy}.checkpoints AS SELECT * FROM checkpoints WHERE tree_size <= 500`,
    );
    const pool = createPool({ url: bed.db.url, schema: copy, max: 2, applicationName: 'audit-cut-test' });
    try {
      // The prefix is a valid log on its own: every remaining checkpoint still matches.
      expect(await verifyStoredLog(pool, logKey.publicKey, bed.env.AUDIT_LOG_ORIGIN)).toMatchObject({
        ok: true,
        treeSize: 500,
      });
      const held = await fetchWitnessedCheckpoint({
        url: witness.url,
        origin: bed.env.AUDIT_LOG_ORIGIN,
        witness: witnessKey,
        log: logKey,
      });
      if (!held?.ok) throw new Error('no witnessed checkpoint');
      const result = await verifyStoredLog(pool, logKey.publicKey, bed.env.AUDIT_LOG_ORIGIN, undefined, [
        held.checkpoint,
      ]);
      expect(result).toMatchObject({ ok: false, kind: 'deleted', index: 500 });
      // The intact log extends what the witness holds.
      expect(
        await verifyStoredLog(bed.db.pool, logKey.publicKey, bed.env.AUDIT_LOG_ORIGIN, undefined, [held.checkpoint]),
      ).toMatchObject({ ok: true, treeSize: 757 });
    } finally {
      await pool.end();
      await bed.db.pool.query(`DROP SCHEMA ${copy} CASCADE`);
    }
  });

  it('a witness that is down delays cosigning, never the log; the latest checkpoint is cosigned once it is back', async () => {
    const state = join(scratch, 'state');
    const port = new URL(witness.url).port;
    await witness.close();
    await publish(100);
    const deadline = Date.now() + 10_000;
    while ((await LogRepository.latestCheckpoint(bed.db.pool))?.treeSize !== 857) {
      if (Date.now() > deadline) throw new Error('the log did not checkpoint 857 entries while the witness was down');
      await sleep(50);
    }
    expect(await LogRepository.latestCosignedSize(bed.db.pool, witnessKey.name)).toBe(757);
    expect(await metric('audit_witness_lag_entries')).toBe(100);
    const unreachable = () => metric('audit_witness_submissions_total', { outcome: 'unreachable' });
    const deadlineDown = Date.now() + 5_000;
    while (!((await unreachable()) >= 1) && Date.now() < deadlineDown) await sleep(50);
    expect(await unreachable()).toBeGreaterThanOrEqual(1);
    witness = await startWitness(
      loadWitnessEnv({
        WITNESS_NAME: 'witness.audit-test/w1',
        WITNESS_LOG_KEYS: logVerifierKey,
        WITNESS_STATE_DIR: state,
        WITNESS_SIGNING_KEY_FILE: join(scratch, 'witness.key'),
        HTTP_HOST: '127.0.0.1',
        HTTP_PORT: port,
        LOG_LEVEL: 'silent',
      }),
    );
    await waitForWitness(857);
    await audit.get(WitnessSubmitter).settled();
    expect(await metric('audit_witness_lag_entries')).toBe(0);
  }, 30_000);

  it("a witness that refuses the log's checkpoint, or holds a larger tree than the log, is counted as refused / ahead and nothing is stored", async () => {
    const latest = await LogRepository.latestCheckpoint(bed.db.pool);
    if (!latest) throw new Error('no checkpoint yet');
    const checkpoint = { treeSize: latest.treeSize, note: latest.note };
    const others: RunningWitness[] = [];
    const startOther = async (name: string, logKeys: string) => {
      const other = await startWitness(
        loadWitnessEnv({
          WITNESS_NAME: name,
          WITNESS_LOG_KEYS: logKeys,
          WITNESS_STATE_DIR: join(scratch, `${name.replaceAll('/', '_')}-state`),
          WITNESS_SIGNING_KEY_FILE: join(scratch, `${name.replaceAll('/', '_')}.key`),
          HTTP_HOST: '127.0.0.1',
          HTTP_PORT: '0',
          LOG_LEVEL: 'silent',
        }),
      );
      others.push(other);
      return other;
    };
    /** A submitter of its own (its own counters) pointed at `other`: one submission, settled. */
    const submitTo = async (other: RunningWitness) => {
      const env = {
        ...bed.env,
        AUDIT_WITNESS_URL: other.url,
        AUDIT_WITNESS_KEY: other.verifierKey,
        AUDIT_WITNESS_RETRY_MS: 60_000,
      };
      const metrics = new Metrics({ service: 'audit', version: 'test' });
      const submitter = new WitnessSubmitter(env, bed.db.pool, logger, new WitnessMetrics(metrics, bed.db.pool, env));
      submitter.checkpointSigned(checkpoint);
      await submitter.settled();
      await submitter.onModuleDestroy();
      const text = await metrics.registry.metrics();
      const count = (outcome: string) =>
        Number(
          text
            .split('\n')
            .find((l) => l.startsWith('audit_witness_submissions_total{') && l.includes(`outcome="${outcome}"`))
            ?.split(' ')
            .at(-1) ?? 0,
        );
      return {
        cosigned: count('cosigned'),
        refused: count('refused'),
        ahead: count('ahead'),
        unreachable: count('unreachable'),
      };
    };
    try {
      // A witness that trusts another key for this origin: the log's own checkpoint is refused (403).
      const stranger = encodeVerifierKey(bed.env.AUDIT_LOG_ORIGIN, generateKeyPairSync('ed25519').publicKey);
      const distrusting = await startOther('witness.audit-test/distrusting', stranger);
      expect(await submitTo(distrusting)).toEqual({ cosigned: 0, refused: 1, ahead: 0, unreachable: 0 });
      expect(
        await LogRepository.latestCosignedSize(bed.db.pool, parseVerifierKey(distrusting.verifierKey).name),
      ).toBeUndefined();

      // A witness that already cosigned a larger tree under the log's key (a log cut after it
      // was witnessed, or a second log under this origin): the writer's tree is behind it.
      const ahead = await startOther('witness.audit-test/ahead', logVerifierKey);
      const key = await openCheckpointKey(bed.env, { createIfMissing: false });
      try {
        const larger = await signCheckpointWith(
          {
            origin: bed.env.AUDIT_LOG_ORIGIN,
            treeSize: checkpoint.treeSize + 1_000,
            rootHash: new Uint8Array(32).fill(7),
            timestamp: new Date(),
          },
          key.signer,
          key.keyName,
        );
        const seeded = await fetch(`${ahead.url}/add-checkpoint`, {
          method: 'POST',
          body: encodeAddCheckpointRequest({ oldSize: 0, proof: [], note: larger }),
        });
        expect(seeded.status).toBe(200);
      } finally {
        key.signer.close();
      }
      expect(await submitTo(ahead)).toEqual({ cosigned: 0, refused: 0, ahead: 1, unreachable: 0 });
      expect(
        await LogRepository.latestCosignedSize(bed.db.pool, parseVerifierKey(ahead.verifierKey).name),
      ).toBeUndefined();
      // The witness keeps what it held: the smaller tree did not replace it.
      expect((await ahead.witness.latest(bed.env.AUDIT_LOG_ORIGIN))?.treeSize).toBe(checkpoint.treeSize + 1_000);
    } finally {
      for (const other of others) await other.close().catch(() => undefined);
    }
  });
});
