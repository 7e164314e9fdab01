import 'reflect-metadata';

import { createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { toBinary } from '@bufbuild/protobuf';
import { createPool } from '@context-gateway/database';
import { type TestSchema } from '@context-gateway/database/testing';
import { noteText, signNote, verifyCheckpoint, verifyConsistency, verifyInclusion } from '@context-gateway/merkle-log';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { createLogger } from '@context-gateway/observability';
import {
  AUDIT_BATCH_HEADER,
  type AuditEvent,
  AuditEventSchema,
  AuditOutcome,
  events,
  streams,
} from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { TestingModule } from '@nestjs/testing';

import { AuditorsModule } from '../auditors/auditors.module.js';
import { AuditorsService } from '../auditors/auditors.service.js';
import { type Env } from '../env.js';
import { LogModule } from './log.module.js';
import { LogQueryService } from './log-query.service.js';
import { LogWriterService } from './log-writer.service.js';
import { SigningKeyHolder } from './signing-key.holder.js';
import { auditTestEvent, type LogTestBed, startAuditInstance, startLogTestBed } from './testing/log-test-kit.js';
import { verifyStoredLog } from './verify-stored-log.js';

const ORG_A = '0b0e6a3c-1111-4a7b-9c55-0d6f3f9c2a11';
const ORG_B = '0b0e6a3c-2222-4a7b-9c55-0d6f3f9c2a11';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const auditEvent = (i: number, org = ORG_A): AuditEvent => auditTestEvent(i, org);

describe('audit log writer, proofs and verification (real Postgres + JetStream)', () => {
  const logger = createLogger({ service: 'audit-test', level: 'silent' });
  let bed: LogTestBed;
  let db: TestSchema;
  let nc: NatsConnection;
  let env: Env;
  let keyDir: string;
  const instances: TestingModule[] = [];
  const published: AuditEvent[] = [];

  async function startInstance(): Promise<TestingModule> {
    const moduleRef = await startAuditInstance({
      pool: db.pool,
      nc,
      env,
      logger,
      imports: [LogModule, AuditorsModule],
    });
    instances.push(moduleRef);
    return moduleRef;
  }

  async function count(): Promise<number> {
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM audit_entries');
    return rows[0].n as number;
  }

  async function waitForCount(n: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await count()) < n) {
      if (Date.now() > deadline) throw new Error(`only ${await count()} of ${n} entries appended`);
      await sleep(50);
    }
  }

  async function publish(n: number, org = ORG_A): Promise<void> {
    const publisher = new JetStreamPublisher(nc);
    const batch = Array.from({ length: n }, (_, i) => auditEvent(published.length + i, org));
    published.push(...batch);
    await Promise.all(batch.map((e) => publisher.publish(events.auditRecorded, e)));
  }

  beforeAll(async () => {
    bed = await startLogTestBed({ prefix: 'audit_log', logger });
    ({ db, nc, env, keyDir } = bed);
  }, 30_000);

  afterAll(async () => {
    for (const instance of instances) await instance.close().catch(() => undefined);
    await bed?.stop();
  });

  it('appends every event once, in dense order, hash-chained, and signs checkpoints', async () => {
    const first = await startInstance();
    await publish(1000);
    // A redelivery: the same event published again past JetStream's de-duplication.
    await jetstream(nc).publish(events.auditRecorded.subject, toBinary(AuditEventSchema, published[10]!));
    await waitForCount(1000);
    await sleep(400);
    expect(await count()).toBe(1000);
    const { rows } = await db.pool.query(
      'SELECT min(seq)::int AS lo, max(seq)::int AS hi, count(DISTINCT event_id)::int AS ids FROM audit_entries',
    );
    expect(rows[0]).toEqual({ lo: 0, hi: 999, ids: 1000 });
    expect(first.get(LogWriterService).stats.duplicates).toBeGreaterThanOrEqual(1);

    const key = await first.get(SigningKeyHolder).get();
    const result = await verifyStoredLog(db.pool, key.signer.publicKey, env.AUDIT_LOG_ORIGIN);
    expect(result).toMatchObject({ ok: true, treeSize: 1000 });
    expect((result as { checkpointsMatched: number }).checkpointsMatched).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('rejects UPDATE and DELETE by trigger, and the writer role has no such privilege', async () => {
    await expect(db.pool.query(`UPDATE audit_entries SET outcome = 'allowed' WHERE seq = 1`)).rejects.toThrow(
      /append-only/,
    );
    await expect(db.pool.query(`DELETE FROM audit_entries WHERE seq = 1`)).rejects.toThrow(/append-only/);
    await expect(db.pool.query(`TRUNCATE audit_entries`)).rejects.toThrow(/append-only/);
    const client = await db.pool.connect();
    try {
      await client.query('SET ROLE audit_writer');
      await expect(client.query(`UPDATE audit_entries SET outcome = 'allowed' WHERE seq = 1`)).rejects.toThrow(
        /permission denied/,
      );
      await expect(client.query(`DELETE FROM audit_entries WHERE seq = 1`)).rejects.toThrow(/permission denied/);
      await expect(client.query(`UPDATE checkpoints SET note = '' `)).rejects.toThrow(/permission denied/);
    } finally {
      await client.query('RESET ROLE');
      client.release();
    }
  });

  it('keeps one writer: a second instance stands by and takes over, continuing the same log', async () => {
    const second = await startInstance();
    await sleep(300);
    expect(second.get(LogWriterService).stats.active).toBe(false);
    await instances[0]!.close();
    await publish(500);
    await waitForCount(1500);
    expect(second.get(LogWriterService).stats.active).toBe(true);
    await sleep(400);
    const key = await second.get(SigningKeyHolder).get();
    expect(await verifyStoredLog(db.pool, key.signer.publicKey, env.AUDIT_LOG_ORIGIN)).toMatchObject({
      ok: true,
      treeSize: 1500,
    });
  }, 30_000);

  it('proves inclusion of an entry and consistency between two checkpoints', async () => {
    const instance = instances[1]!;
    const queries = instance.get(LogQueryService);
    const target = published[777]!;
    const answer = await queries.getEntry({ orgId: ORG_A, eventId: target.eventId } as never);
    const checkpoint = answer.checkpoint!;
    const { publicKey, keyName } = await queries.getCheckpoint({ treeSize: 0n } as never);
    const trusted = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') },
      format: 'jwk',
    });
    const verified = verifyCheckpoint(checkpoint.signedNote!, trusted, { keyName });
    expect(verified.ok).toBe(true);
    expect(answer.entry.event!.eventId).toBe(target.eventId);
    expect(
      verifyInclusion(
        answer.entry.leafHash as Uint8Array,
        Number(answer.entry.index),
        Number(checkpoint.treeSize),
        answer.inclusionProof as Uint8Array[],
        checkpoint.rootHash as Uint8Array,
      ),
    ).toBe(true);
    // The same proof does not prove another leaf.
    expect(
      verifyInclusion(
        Buffer.alloc(32, 1),
        Number(answer.entry.index),
        Number(checkpoint.treeSize),
        answer.inclusionProof as Uint8Array[],
        checkpoint.rootHash as Uint8Array,
      ),
    ).toBe(false);

    const { rows } = await db.pool.query('SELECT tree_size::int AS n FROM checkpoints ORDER BY tree_size');
    const sizes = rows.map((r) => r.n as number);
    expect(sizes.length).toBeGreaterThanOrEqual(2);
    const [oldSize, newSize] = [sizes[0]!, sizes[sizes.length - 1]!];
    const consistency = await queries.getConsistencyProof({
      oldSize: BigInt(oldSize),
      newSize: BigInt(newSize),
    } as never);
    expect(
      verifyConsistency(
        oldSize,
        newSize,
        consistency.oldCheckpoint.rootHash as Uint8Array,
        consistency.newCheckpoint.rootHash as Uint8Array,
        consistency.proof as Uint8Array[],
      ),
    ).toBe(true);
  });

  it('scopes search and entries to one org, with cursor pagination', async () => {
    await publish(5, ORG_B);
    await waitForCount(1505);
    const queries = instances[1]!.get(LogQueryService);
    const seen = new Set<string>();
    let cursor = '';
    do {
      const page = await queries.search({ orgId: ORG_B, cursor, limit: 2 } as never);
      for (const e of page.entries) seen.add(e.event!.eventId!);
      cursor = page.nextCursor;
    } while (cursor);
    expect([...seen].sort()).toEqual(
      published
        .slice(-5)
        .map((e) => e.eventId)
        .sort(),
    );
    await expect(queries.getEntry({ orgId: ORG_B, eventId: published[0]!.eventId } as never)).rejects.toMatchObject({
      code: 'not_found',
    });
    // A user's own view spans organizations, and is nobody else's.
    const mine = await queries.search({ orgId: '', userId: 'user-3', limit: 1000 } as never);
    const expected = published.filter((e) => e.userId === 'user-3').map((e) => e.eventId);
    expect(mine.entries.map((e) => e.event!.eventId).sort()).toEqual(expected.sort());
    expect(new Set(mine.entries.map((e) => e.event!.orgId))).toEqual(new Set([ORG_A, ORG_B]));
    const denied = await queries.search({
      orgId: ORG_A,
      outcome: AuditOutcome.DENIED,
      userId: 'user-0',
      limit: 1000,
    } as never);
    expect(denied.entries.length).toBeGreaterThan(0);
    expect(denied.entries.every((e) => e.event!.outcome === AuditOutcome.DENIED && e.event!.userId === 'user-0')).toBe(
      true,
    );
  }, 30_000);

  describe('verify names the first tampered entry (superuser edits a copy of the log, triggers bypassed)', () => {
    async function tamperedCopy(tamper: string): Promise<ReturnType<typeof verifyStoredLog>> {
      const copy = `${db.schema}_t${Math.floor(Math.random() * 1e6)}`;
      await db.pool.query(
        `CREATE SCHEMA ${copy}; CREATE TABLE ${copy}.audit_entries AS SELECT * FROM audit_entries; CREATE TABLE ${copy}.checkpoints AS SELECT * FROM checkpoints`,
      );
      const pool = createPool({ url: db.url, schema: copy, max: 2, applicationName: 'audit-tamper-test' });
      try {
        await pool.query(tamper);
        const key = await instances[1]!.get(SigningKeyHolder).get();
        return await verifyStoredLog(pool, key.signer.publicKey, env.AUDIT_LOG_ORIGIN);
      } finally {
        await pool.end();
        await db.pool.query(`DROP SCHEMA ${copy} CASCADE`);
      }
    }

    it('an edited event', async () => {
      const result = await tamperedCopy(
        `UPDATE audit_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'req-123"', 'req-999"'), 'UTF8') WHERE seq = 123`,
      );
      expect(result).toMatchObject({ ok: false, kind: 'edited', index: 123 });
    });

    it('an edited search column (hiding an entry from auditors)', async () => {
      const result = await tamperedCopy(`UPDATE audit_entries SET org_id = '${ORG_B}' WHERE seq = 200`);
      expect(result).toMatchObject({ ok: false, kind: 'edited', index: 200 });
    });

    it('a deleted entry', async () => {
      const result = await tamperedCopy(`DELETE FROM audit_entries WHERE seq = 321`);
      expect(result).toMatchObject({ ok: false, kind: 'deleted', index: 321 });
    });

    it('an inserted entry', async () => {
      const result = await tamperedCopy(
        `UPDATE audit_entries SET seq = seq + 1 WHERE seq >= 400; INSERT INTO audit_entries (seq, event_id, org_id, occurred_at, application_id, user_id, integration, capability, action, outcome, entry, leaf_hash, recorded_at) SELECT 400, '${randomUUID()}', org_id, occurred_at, application_id, user_id, integration, capability, action, outcome, entry, leaf_hash, recorded_at FROM audit_entries WHERE seq = 10`,
      );
      expect(result).toMatchObject({ ok: false, index: 400 });
      expect(['inserted', 'reordered']).toContain((result as { kind: string }).kind);
    });

    it('checkpoints re-signed with another key (the pinned key is not derived from a key file)', async () => {
      const forger = generateKeyPairSync('ed25519');
      const copy = `${db.schema}_r${Math.floor(Math.random() * 1e6)}`;
      await db.pool.query(
        `CREATE SCHEMA ${copy}; CREATE TABLE ${copy}.audit_entries AS SELECT * FROM audit_entries; CREATE TABLE ${copy}.checkpoints AS SELECT * FROM checkpoints`,
      );
      const pool = createPool({ url: db.url, schema: copy, max: 2, applicationName: 'audit-tamper-test' });
      try {
        // Whoever rewrites the log must sign new checkpoints; without the pinned key, with their own.
        for (const { tree_size, note } of (await pool.query('SELECT tree_size, note FROM checkpoints')).rows) {
          const resigned = signNote(noteText(note as string), forger.privateKey, env.AUDIT_LOG_ORIGIN);
          await pool.query('UPDATE checkpoints SET note = $1 WHERE tree_size = $2', [resigned, tree_size]);
        }
        const key = await instances[1]!.get(SigningKeyHolder).get();
        const pinned = await verifyStoredLog(pool, key.signer.publicKey, env.AUDIT_LOG_ORIGIN);
        expect(pinned).toMatchObject({ ok: false, kind: 'checkpoint_mismatch' });
        expect((pinned as { detail: string }).detail).toContain('no signature by the trusted key');
        // What a verifier deriving the key from whatever key file it finds would have said:
        expect(await verifyStoredLog(pool, forger.publicKey, env.AUDIT_LOG_ORIGIN)).toMatchObject({ ok: true });
      } finally {
        await pool.end();
        await db.pool.query(`DROP SCHEMA ${copy} CASCADE`);
      }
    });

    it('two swapped entries', async () => {
      const result = await tamperedCopy(
        `UPDATE audit_entries SET seq = CASE seq WHEN 500 THEN 501 ELSE 500 END WHERE seq IN (500, 501)`,
      );
      expect(result).toMatchObject({ ok: false, kind: 'reordered', index: 500 });
    });
  });

  it('issues auditor tokens stored hashed, scoped to their org', async () => {
    const auditors = instances[1]!.get(AuditorsService);
    const { token, auditorId } = await auditors.create({
      orgId: ORG_A,
      name: 'external',
      createdBy: 'operator',
    } as never);
    expect(token).toMatch(/^cg_aud_/);
    await expect(auditors.authenticate({ token } as never)).resolves.toEqual({ auditorId, orgId: ORG_A });
    await expect(auditors.authenticate({ token: `${token}x` } as never)).rejects.toMatchObject({
      code: 'unauthenticated',
    });
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM auditors WHERE token_hash = convert_to($1, 'UTF8')`,
      [token],
    );
    expect(rows[0].n).toBe(0);
    // Revoked: the token stops working; another org cannot revoke it (not found).
    await expect(auditors.revoke({ orgId: ORG_B, auditorId } as never)).rejects.toMatchObject({ code: 'not_found' });
    await expect(auditors.authenticate({ token } as never)).resolves.toMatchObject({ auditorId });
    await auditors.revoke({ orgId: ORG_A, auditorId } as never);
    await expect(auditors.authenticate({ token } as never)).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('dead-letters an undecodable or invalid event with its reason and appends the rest of its batch', async () => {
    const before = await count();
    const js = jetstream(nc);
    await publish(5);
    await js.publish(events.auditRecorded.subject, Buffer.from('not protobuf at all'));
    await js.publish(
      events.auditRecorded.subject,
      toBinary(AuditEventSchema, { ...auditEvent(0), eventId: 'not-a-uuid' }),
    );
    await publish(5);
    await waitForCount(before + 10);
    const dead = await (await js.consumers.get(streams.deadLetters.name)).fetch({ max_messages: 2, expires: 5_000 });
    const reasons: string[] = [];
    for await (const m of dead) {
      reasons.push(`${m.headers?.get('cg-dead-code')}: ${m.headers?.get('cg-origin-stream')}`);
      if (reasons.length === 2) break;
    }
    expect(reasons.sort()).toEqual(['malformed_request: AUDIT', 'validation_failed: AUDIT']);
    await sleep(300);
    expect(await count()).toBe(before + 10);
  }, 30_000);

  it('appends the events of a group-commit batch in order, once each, even when the batch comes again', async () => {
    const before = await count();
    const publisher = new JetStreamPublisher(nc);
    const batch = Array.from({ length: 30 }, (_, i) => auditEvent(published.length + i));
    published.push(...batch);
    const message = { batchId: randomUUID(), events: batch };
    const asBatch = { headers: { [AUDIT_BATCH_HEADER]: '1' } };
    await publisher.publish(events.auditRecordedBatch, message, asBatch);
    // The same events again in another batch (a gateway that retried after a lost ack, past
    // the stream's de-duplication): each event id is in the log once.
    await publisher.publish(events.auditRecordedBatch, { ...message, batchId: randomUUID() }, asBatch);
    await publish(1);
    await waitForCount(before + 31);
    await sleep(300);
    expect(await count()).toBe(before + 31);
    const { rows } = await db.pool.query<{ event_id: string }>(
      'SELECT event_id FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT 30',
      [before],
    );
    expect(rows.map((r) => r.event_id)).toEqual(batch.map((e) => e.eventId));
  }, 30_000);

  it('refuses to generate a new signing key while checkpoints signed by the missing one are stored', async () => {
    const path = join(keyDir, 'moved', 'audit-signing.key');
    const holder = new SigningKeyHolder({ ...env, AUDIT_SIGNING_KEY_FILE: path }, db.pool, logger);
    await expect(holder.get()).rejects.toMatchObject({ code: 'key_file_missing' });
    expect(existsSync(path)).toBe(false);
  });
});
