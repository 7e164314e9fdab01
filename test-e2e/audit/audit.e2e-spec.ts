import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, verify as verifySignature } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';

import { verifyInclusion } from '../support/inclusion-proof.js';
import { freePort, rootDir, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// Issue 7 on the real stack: the trail loses nothing when the audit service dies under
// load, verify catches rows edited/deleted/inserted in SQL, and auditors see their own org only.
const OPERATOR_TOKEN = 'operator-token-for-the-audit-e2e-0123456789';
let stack: TestStack;
let db: pg.Pool;
let keyDir: string;
let restartedAudit: ChildProcess | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What these tests read of an entry in the auditor API's JSON. */
interface EntryJson {
  eventId: string;
  orgId: string;
  operation?: string;
  resource?: string;
  outcome: string;
  phase: string;
  intentEventId?: string;
}

/** The answer's JSON as parsed (any: each test reads what it expects), or undefined when it is not JSON. */
function parseJson(text: string) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function call(method: string, path: string, token?: string, body?: unknown) {
  const response = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, text, json: parseJson(text), headers: response.headers };
}

const createOrg = (name: string) => call('POST', '/v1/admin/organizations', OPERATOR_TOKEN, { name });

/**
 * The log's public key as an auditor pins it once: the verifier key audit logs when it opens
 * its signing key, as the operator would hand it over on day one. Read from the log, not the
 * key: with TEST_KEY_PROVIDER=pkcs11 the key is in the token and no file holds it.
 */
function pinnedPublicKey(): string {
  const opened = stack.logs.find(
    (line) => line.service === 'audit' && line.json?.msg === 'audit checkpoint signing key opened',
  );
  const verifierKey = opened?.json?.verifierKey;
  if (typeof verifierKey !== 'string') throw new Error('audit has not logged its verifier key');
  return verifierKey;
}

function runVerify(args = ['--public-key', pinnedPublicKey()]): { code: number; out: string } {
  const result = spawnSync(process.execPath, [join(rootDir, 'services/audit/dist/log/verify.cli.js'), ...args], {
    env: {
      ...process.env,
      DATABASE_URL: stack.databaseUrl,
      NATS_URL: stack.natsUrl,
      AUDIT_SIGNING_KEY_FILE: join(keyDir, 'audit-signing.key'),
      MASTER_KEY_FILE: join(keyDir, 'master.key'),
    },
    encoding: 'utf8',
  });
  return { code: result.status ?? -1, out: `${result.stdout}${result.stderr}` };
}

beforeAll(async () => {
  keyDir = mkdtempSync(join(tmpdir(), 'cg-audit-e2e-keys-'));
  stack = await startTestStack('audit', {
    OPERATOR_TOKEN,
    AUDIT_SIGNING_KEY_FILE: join(keyDir, 'audit-signing.key'),
    AUDIT_CHECKPOINT_INTERVAL_MS: '300',
    LOG_LEVEL: 'info',
  });
  db = new pg.Pool({ connectionString: stack.databaseUrl, max: 3 });
}, 180_000);

afterAll(async () => {
  restartedAudit?.kill('SIGTERM');
  await db?.end();
  await stack?.stop();
  rmSync(keyDir, { recursive: true, force: true });
}, 60_000);

describe('auditors', () => {
  let orgA: string;
  let orgB: string;
  let tokenA: string;
  let tokenB: string;

  beforeAll(async () => {
    orgA = (await createOrg('Audited A')).json.id;
    orgB = (await createOrg('Audited B')).json.id;
    const a = await call('POST', `/v1/admin/organizations/${orgA}/auditors`, OPERATOR_TOKEN, { name: 'auditor of A' });
    const b = await call('POST', `/v1/admin/organizations/${orgB}/auditors`, OPERATOR_TOKEN, { name: 'auditor of B' });
    expect([a.status, b.status]).toEqual([201, 201]);
    tokenA = a.json.token;
    tokenB = b.json.token;
    // Each org's trail holds its creation and its auditor's issuance (intent + outcome).
    await waitFor(
      'org entries appended',
      async () => (await call('GET', '/v1/audit/entries', tokenA)).json?.entries?.length >= 3 || undefined,
    );
    await waitFor(
      'org B entries appended',
      async () => (await call('GET', '/v1/audit/entries', tokenB)).json?.entries?.length >= 3 || undefined,
    );
  }, 60_000);

  it('need an auditor token; an API-less request is 401', async () => {
    expect((await call('GET', '/v1/audit/entries')).status).toBe(401);
    expect((await call('GET', '/v1/audit/entries', 'cg_aud_not-a-real-token')).status).toBe(401);
    expect((await call('GET', '/v1/audit/entries', OPERATOR_TOKEN)).status).toBe(401);
  });

  it('see their own organization only: search, single entries (404 otherwise) and exports', async () => {
    const a = await call('GET', '/v1/audit/entries?limit=1000', tokenA);
    const b = await call('GET', '/v1/audit/entries?limit=1000', tokenB);
    expect(a.status).toBe(200);
    expect(a.json.entries.every((e: EntryJson) => e.orgId === orgA)).toBe(true);
    expect(b.json.entries.every((e: EntryJson) => e.orgId === orgB)).toBe(true);
    const created = a.json.entries.find((e: EntryJson) => e.operation === 'POST /v1/admin/organizations');
    expect(created).toMatchObject({
      action: 'admin_change',
      outcome: 'allowed',
      actorKind: 'operator',
      resource: `organization:${orgA}`,
    });
    // Never a credential in the trail: the auditor token issued in that request is nowhere.
    expect(a.text).not.toContain(tokenA);

    const foreign = b.json.entries[0].eventId;
    const asA = await call('GET', `/v1/audit/entries/${foreign}`, tokenA);
    expect(asA.status).toBe(404);
    expect((await call('GET', `/v1/audit/entries/${foreign}`, tokenB)).status).toBe(200);
    // Filters cannot widen the scope: there is no org filter, and a foreign user/app filter is simply empty.
    expect((await call('GET', `/v1/audit/entries?orgId=${orgB}`, tokenA)).status).toBe(422);

    const ndjson = await call('GET', '/v1/audit/export?format=ndjson', tokenA);
    expect(ndjson.status).toBe(200);
    expect(ndjson.headers.get('content-type')).toMatch(/application\/x-ndjson/);
    const lines = ndjson.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((e) => e.orgId === orgA)).toBe(true);
    const csv = await call('GET', '/v1/audit/export?format=csv&outcome=allowed', tokenA);
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    const rows = csv.text.trim().split('\r\n');
    expect(rows[0]).toMatch(/^index,eventId,occurredAt,/);
    expect(rows.slice(1).every((r) => r.includes(orgA) && !r.includes(orgB))).toBe(true);
  });

  it('paginate with a cursor, newest first, without overlap', async () => {
    const all = (await call('GET', '/v1/audit/entries?limit=1000', tokenA)).json.entries.map(
      (e: EntryJson) => e.eventId,
    );
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { entries: EntryJson[]; nextCursor: string | null } = (
        await call('GET', `/v1/audit/entries?limit=1${cursor ? `&cursor=${cursor}` : ''}`, tokenA)
      ).json;
      paged.push(...page.entries.map((e) => e.eventId));
      cursor = page.nextCursor;
    } while (cursor);
    // Reading is itself audited, so newer entries may appear on page one meanwhile; the old ones all come back once.
    expect(new Set(paged).size).toBe(paged.length);
    expect(all.every((id: string) => paged.includes(id))).toBe(true);
  });

  it('lose access when the operator revokes their token', async () => {
    const issued = await call('POST', `/v1/admin/organizations/${orgA}/auditors`, OPERATOR_TOKEN, {
      name: 'short-lived',
    });
    expect((await call('GET', '/v1/audit/entries', issued.json.token)).status).toBe(200);
    // Another org's path cannot revoke it.
    expect(
      (await call('DELETE', `/v1/admin/organizations/${orgB}/auditors/${issued.json.auditorId}`, OPERATOR_TOKEN))
        .status,
    ).toBe(404);
    expect(
      (await call('DELETE', `/v1/admin/organizations/${orgA}/auditors/${issued.json.auditorId}`, OPERATOR_TOKEN))
        .status,
    ).toBe(204);
    expect((await call('GET', '/v1/audit/entries', issued.json.token)).status).toBe(401);
    // Both the issuance and the revocation are in org A's trail, intent and outcome.
    // (appended asynchronously: the request only waited for the stream)
    const trail: EntryJson[] = await waitFor('the revocation in the trail', async () => {
      const entries = (await call('GET', '/v1/audit/entries?action=admin_change&limit=1000', tokenA)).json.entries;
      return entries.some(
        (e: EntryJson) => e.resource === `auditor:${issued.json.auditorId}` && e.operation?.startsWith('DELETE'),
      )
        ? entries
        : undefined;
    });
    const outcome = trail.find(
      (e) =>
        e.resource === `auditor:${issued.json.auditorId}` &&
        e.operation?.startsWith('DELETE') &&
        e.outcome === 'allowed',
    );
    expect(outcome).toMatchObject({ phase: 'outcome', actorKind: 'operator', orgId: orgA });
    const intent = trail.find((e) => e.eventId === outcome!.intentEventId);
    expect(intent).toMatchObject({ phase: 'intent', orgId: orgA, operation: outcome!.operation });
  }, 30_000);

  it('get an entry with an inclusion proof against a signed checkpoint they can verify themselves', async () => {
    const entries = (await call('GET', '/v1/audit/entries?limit=1000', tokenA)).json.entries;
    const oldest = entries[entries.length - 1];
    const answer = await waitFor('a checkpoint covering the entry', async () => {
      const r = await call('GET', `/v1/audit/entries/${oldest.eventId}`, tokenA);
      return r.json?.checkpoint ? r.json : undefined;
    });
    const { publicKey, keyName } = (await call('GET', '/v1/audit/checkpoint', tokenA)).json;
    const leaf = createHash('sha256')
      .update(Buffer.from([0]))
      .update(Buffer.from(answer.canonicalEntry, 'base64'))
      .digest();
    expect(leaf.toString('hex')).toBe(answer.entry.leafHash);
    const proof = answer.inclusionProof.map((h: string) => Buffer.from(h, 'base64'));
    const root = Buffer.from(answer.checkpoint.rootHash, 'base64');
    expect(verifyInclusion(leaf, answer.entry.index, answer.checkpoint.treeSize, proof, root)).toBe(true);
    // The signed note: body, blank line, "— <name> <base64(keyid || signature)>".
    const note: string = answer.checkpoint.signedNote;
    const [body, sigLine] = note.split('\n\n');
    expect(sigLine).toMatch(new RegExp(`^— ${keyName.replace(/[/.]/g, '\\$&')} `));
    const sig = Buffer.from(sigLine!.trim().split(' ')[2]!, 'base64').subarray(4);
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey, 'base64').toString('base64url') },
      format: 'jwk',
    });
    expect(verifySignature(null, Buffer.from(`${body}\n`), key, sig)).toBe(true);
    expect(body!.split('\n')[1]).toBe(String(answer.checkpoint.treeSize));
  });
});

describe('nothing lost: the audit service is killed in the middle of a load and restarted', () => {
  it('every acknowledged request has exactly one entry', async () => {
    const acked: string[] = [];
    let failures = 0;
    let killed = false;
    const total = 400;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const r = await createOrg(`load ${i}`);
        if (r.status === 201) acked.push(r.json.id);
        else failures += 1;
        if (!killed && acked.length >= 120) {
          killed = true;
          process.kill(stack.pids().audit!, 'SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(killed).toBe(true);
    // The gateway answered from the stream's ack alone: the dead audit service cost nothing.
    expect(failures).toBe(0);

    // The killed service had not appended everything: what follows is recovered from the stream.
    const beforeRestart = await db.query(
      `SELECT count(*)::int AS n FROM audit.audit_entries WHERE org_id = ANY($1::uuid[])`,
      [acked],
    );
    expect(beforeRestart.rows[0].n).toBeLessThan(acked.length);

    const port = await freePort();
    restartedAudit = spawn(process.execPath, [stack.serviceEntries.audit!], {
      env: {
        ...process.env,
        DATABASE_URL: stack.databaseUrl,
        NATS_URL: stack.natsUrl,
        NATS_NKEY_SEED_FILE: stack.natsSeedFiles.audit,
        ...stack.keyStoreEnv,
        HTTP_PORT: String(port),
        MASTER_KEY_FILE: join(keyDir, 'master.key'),
        AUDIT_SIGNING_KEY_FILE: join(keyDir, 'audit-signing.key'),
        AUDIT_CHECKPOINT_INTERVAL_MS: '300',
        LOG_LEVEL: 'warn',
      },
      stdio: 'ignore',
    });
    const perOrg = async () => {
      const { rows } = await db.query(
        `SELECT org_id, count(*)::int AS n FROM audit.audit_entries WHERE org_id = ANY($1::uuid[]) AND action = 'admin_change' GROUP BY org_id`,
        [acked],
      );
      return new Map(rows.map((r) => [r.org_id as string, r.n as number]));
    };
    await waitFor(
      'every acknowledged request appended',
      async () => ((await perOrg()).size === acked.length ? true : undefined),
      60_000,
    );
    await sleep(1_000); // any late redelivery would show up as a second entry
    const counts = await perOrg();
    expect(acked.every((id) => counts.get(id) === 1)).toBe(true);
    const { rows } = await db.query(
      `SELECT count(*)::int AS n, max(seq)::int + 1 AS size, count(DISTINCT event_id)::int AS ids FROM audit.audit_entries`,
    );
    expect(rows[0].n).toBe(rows[0].size); // dense: no gap, no double
    expect(rows[0].ids).toBe(rows[0].n);
  }, 180_000);
});

describe('verify (pnpm audit:verify) against rows changed directly in SQL by a superuser', () => {
  let checkpointed: number;

  beforeAll(async () => {
    // Enough entries of its own (the file's other tests may be filtered out), then tamper
    // below the latest checkpoint so signatures pin what was there.
    for (let i = 0; i < 60; i += 1) expect((await createOrg(`verify ${i}`)).status).toBe(201);
    checkpointed = await waitFor('a checkpoint', async () => {
      const { rows } = await db.query(`SELECT max(tree_size)::int AS n FROM audit.checkpoints`);
      return rows[0].n > 50 ? (rows[0].n as number) : undefined;
    });
    expect(runVerify()).toMatchObject({ code: 0 });
  }, 120_000);

  /** Changes the log with triggers bypassed (only a superuser can), runs verify, puts it back. */
  async function tampered(change: string, undo: string) {
    const client = await db.connect();
    try {
      await client.query(`SET session_replication_role = replica; ${change}`);
      return runVerify();
    } finally {
      await client.query(`${undo}; SET session_replication_role = origin`);
      client.release();
    }
  }

  it('refuses to run without a pinned public key, and fails for a key that did not sign', () => {
    const none = runVerify([]);
    expect(none.code).toBe(2);
    expect(none.out).toContain('no pinned public key');
    const other = generateKeyPairSync('ed25519').publicKey;
    const wrong = runVerify([
      '--public-key',
      Buffer.from(other.export({ format: 'jwk' }).x!, 'base64url').toString('base64'),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain('no signature by the trusted key');
  });

  it('audit:log-key prints and publishes the key the service signs with; it never makes a new one for a signed log', () => {
    const logKey = (signingKeyFile: string, out: string, databaseUrl = stack.databaseUrl) =>
      spawnSync(process.execPath, [join(rootDir, 'services/audit/dist/log/log-key.cli.js'), '--out', out], {
        env: {
          ...process.env,
          DATABASE_URL: databaseUrl,
          NATS_URL: stack.natsUrl,
          ...stack.keyStoreEnv,
          MASTER_KEY_FILE: join(keyDir, 'master.key'),
          AUDIT_SIGNING_KEY_FILE: signingKeyFile,
        },
        encoding: 'utf8',
      });
    const published = join(keyDir, 'audit.vkey');
    const opened = logKey(join(keyDir, 'audit-signing.key'), published);
    expect(opened.status).toBe(0);
    expect(opened.stdout.trim()).toBe(pinnedPublicKey());
    expect(readFileSync(published, 'utf8')).toBe(`${pinnedPublicKey()}\n`);
    if (stack.keyStoreEnv.KEY_PROVIDER !== 'pkcs11') {
      // The key file is lost: a new key over a log it signed is refused, and nothing is published.
      const lost = logKey(join(keyDir, 'lost', 'audit-signing.key'), join(keyDir, 'lost.vkey'));
      expect(lost.status).toBe(2);
      expect(lost.stderr).toContain('checkpoints signed with it');
      expect(existsSync(join(keyDir, 'lost.vkey'))).toBe(false);
    }
    // An environment that does not validate: exit 2 with the reason, nothing published.
    const misconfigured = logKey(join(keyDir, 'audit-signing.key'), join(keyDir, 'bad.vkey'), 'not-a-url');
    expect(misconfigured.status).toBe(2);
    expect(misconfigured.stderr).toContain('DATABASE_URL');
    expect(existsSync(join(keyDir, 'bad.vkey'))).toBe(false);
  });

  it('the trigger refuses UPDATE and DELETE even to the superuser', async () => {
    await expect(db.query(`UPDATE audit.audit_entries SET outcome = 'denied' WHERE seq = 1`)).rejects.toThrow(
      /append-only/,
    );
    await expect(db.query(`DELETE FROM audit.audit_entries WHERE seq = 1`)).rejects.toThrow(/append-only/);
  });

  it('names an edited entry', async () => {
    // Turn an allowed request into a denied one, as someone covering their tracks might.
    const { rows } = await db.query(
      `SELECT seq::int AS k, event_id, encode(entry, 'hex') AS hex FROM audit.audit_entries WHERE outcome = 'allowed' AND seq < $1 ORDER BY seq DESC LIMIT 1`,
      [Math.floor(checkpointed / 2)],
    );
    const k = rows[0].k as number;
    const result = await tampered(
      `UPDATE audit.audit_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), 'AUDIT_OUTCOME_ALLOWED', 'AUDIT_OUTCOME_DENIED'), 'UTF8') WHERE seq = ${k}`,
      `UPDATE audit.audit_entries SET entry = decode('${rows[0].hex}', 'hex') WHERE seq = ${k}`,
    );
    expect(result.code).toBe(1);
    expect(result.out).toContain(`edited at index ${k}`);
    expect(result.out).toContain(rows[0].event_id);
    expect(runVerify().code).toBe(0);
  }, 60_000);

  it('names a deleted entry', async () => {
    const k = Math.floor(checkpointed / 3);
    const result = await tampered(
      `CREATE TEMP TABLE saved AS SELECT * FROM audit.audit_entries WHERE seq = ${k}; DELETE FROM audit.audit_entries WHERE seq = ${k}`,
      `INSERT INTO audit.audit_entries SELECT * FROM saved; DROP TABLE saved`,
    );
    expect(result.code).toBe(1);
    expect(result.out).toContain(`deleted at index ${k}`);
    expect(runVerify().code).toBe(0);
  }, 60_000);

  it('names an inserted entry', async () => {
    const k = Math.floor(checkpointed / 4);
    const result = await tampered(
      `UPDATE audit.audit_entries SET seq = seq + 1000000 WHERE seq >= ${k}; UPDATE audit.audit_entries SET seq = seq - 999999 WHERE seq >= 1000000;
       INSERT INTO audit.audit_entries (seq, event_id, org_id, occurred_at, action, outcome, entry, leaf_hash)
         SELECT ${k}, gen_random_uuid(), org_id, occurred_at, action, outcome, entry, leaf_hash FROM audit.audit_entries WHERE seq = 0`,
      `DELETE FROM audit.audit_entries WHERE seq = ${k}; UPDATE audit.audit_entries SET seq = seq + 1000000 WHERE seq > ${k}; UPDATE audit.audit_entries SET seq = seq - 1000001 WHERE seq >= 1000000`,
    );
    expect(result.code).toBe(1);
    expect(result.out).toMatch(new RegExp(`(inserted|reordered) at index ${k}`));
    expect(runVerify().code).toBe(0);
  }, 60_000);
});
