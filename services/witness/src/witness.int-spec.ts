import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  consistencyProof,
  encodeAddCheckpointRequest,
  encodeVerifierKey,
  leafHash,
  parseVerifierKey,
  rootHash,
  signCheckpoint,
  verifyCosignature,
} from '@context-gateway/merkle-log';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { loadEnv } from './env.js';
import { type RunningWitness, startWitness } from './start.js';

const ORIGIN = 'audit.witness-test.local/v1';
const log = generateKeyPairSync('ed25519');
const impostor = generateKeyPairSync('ed25519');
const leaves = Array.from({ length: 300 }, (_, i) => leafHash(Buffer.from(`entry ${i}`)));
const forked = leaves.map((leaf, i) => (i === 5 ? leafHash(Buffer.from('rewritten')) : leaf));

function checkpointNote(size: number, tree = leaves, key = log.privateKey, origin = ORIGIN): string {
  return signCheckpoint(
    { origin, treeSize: size, rootHash: rootHash(tree.slice(0, size)), timestamp: new Date(1_796_000_000_000 + size) },
    key,
  );
}

function body(oldSize: number, size: number, tree = leaves, note = checkpointNote(size, tree)): string {
  const proof = oldSize === 0 ? [] : consistencyProof(oldSize, size, tree);
  return encodeAddCheckpointRequest({ oldSize, proof, note });
}

const scratch = mkdtempSync(join(tmpdir(), 'witness-int-'));
const env = loadEnv({
  WITNESS_NAME: 'witness.test/w1',
  WITNESS_LOG_KEYS: encodeVerifierKey(ORIGIN, log.publicKey),
  WITNESS_STATE_DIR: join(scratch, 'state'),
  WITNESS_SIGNING_KEY_FILE: join(scratch, 'keys', 'witness.key'),
  HTTP_HOST: '127.0.0.1',
  HTTP_PORT: '0',
  LOG_LEVEL: 'silent',
});
let running: RunningWitness;

async function submit(text: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${running.url}/add-checkpoint`, { method: 'POST', body: text, headers });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

beforeAll(async () => {
  running = await startWitness(env);
});
afterAll(async () => {
  await running.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the witness (C2SP tlog-witness add-checkpoint)', () => {
  it('cosigns a first checkpoint and returns a cosignature its verifier key checks', async () => {
    const note = checkpointNote(10);
    const answer = await submit(body(0, 10, leaves, note));
    expect(answer.status).toBe(200);
    expect(answer.text).toMatch(/^— witness\.test\/w1 [A-Za-z0-9+/=]+\n$/);
    const witnessKey = parseVerifierKey(running.verifierKey);
    expect(witnessKey.type).toBe(0x04);
    expect(verifyCosignature(note + answer.text, witnessKey.publicKey, 'witness.test/w1')).toMatchObject({ ok: true });
    // The monitoring read gives back the cosigned checkpoint.
    const latest = await fetch(`${running.url}/checkpoint?origin=${encodeURIComponent(ORIGIN)}`);
    expect(latest.status).toBe(200);
    expect(await latest.text()).toBe(note + answer.text);
  });

  it('answers 409 with the size it holds to a client that guessed the old size wrong', async () => {
    const answer = await submit(body(0, 20));
    expect(answer).toEqual({ status: 409, type: 'text/x.tlog.size', text: '10\n' });
    expect((await submit(body(5, 20))).text).toBe('10\n');
  });

  it('extends with a consistency proof, sent as any content type', async () => {
    expect((await submit(body(10, 20), { 'content-type': 'application/json' })).status).toBe(200);
    expect((await submit(body(20, 137))).status).toBe(200);
  });

  it('refuses, 422, a signed checkpoint of a rewritten log, and keeps what it holds', async () => {
    const answer = await submit(body(137, 200, forked));
    expect(answer.status).toBe(422);
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'inconsistent' });
    // A proof that is not for these trees does not pass either.
    const wrongProof = encodeAddCheckpointRequest({
      oldSize: 137,
      proof: consistencyProof(136, 200, leaves),
      note: checkpointNote(200),
    });
    expect((await submit(wrongProof)).status).toBe(422);
    expect((await running.witness.latest(ORIGIN))?.treeSize).toBe(137);
  });

  it('refuses, 409, another root at the size it holds; re-cosigns the same one', async () => {
    expect(await submit(body(137, 137, forked))).toMatchObject({ status: 409, text: '137\n' });
    expect((await submit(body(137, 137))).status).toBe(200);
  });

  it('refuses a truncated log: a smaller tree is 400, and a client claiming the smaller size gets 409', async () => {
    const shrunk = encodeAddCheckpointRequest({ oldSize: 137, proof: [], note: checkpointNote(100) });
    expect((await submit(shrunk)).status).toBe(400);
    expect(await submit(body(100, 120))).toMatchObject({ status: 409, text: '137\n' });
  });

  it('refuses unknown logs (404), untrusted signatures (403) and malformed requests (400)', async () => {
    const otherLog = checkpointNote(3, leaves, log.privateKey, 'other.example/log');
    expect((await submit(encodeAddCheckpointRequest({ oldSize: 0, proof: [], note: otherLog }))).status).toBe(404);
    const impostorNote = checkpointNote(150, leaves, impostor.privateKey);
    const forged = await submit(body(137, 150, leaves, impostorNote));
    expect(forged.status).toBe(403);
    expect(JSON.parse(forged.text)).toMatchObject({ code: 'bad_signature' });
    for (const bad of ['', 'old 1\n', 'old x\n\nfoo\n', `old 0\nnot-base64!\n\n${checkpointNote(1)}`]) {
      expect((await submit(bad)).status).toBe(400);
    }
    const proofLines = Array.from({ length: 64 }, () => `${leaves[0]!.toString('base64')}\n`).join('');
    expect((await submit(`old 137\n${proofLines}\n${checkpointNote(150)}`)).status).toBe(400);
    expect((await submit('x'.repeat(20_000))).status).toBe(413);
  });

  it('lets one of two racing submissions from the same size through, never rolling back', async () => {
    const answers = await Promise.all([submit(body(137, 180)), submit(body(137, 250))]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
    const held = (await running.witness.latest(ORIGIN))!.treeSize;
    expect([180, 250]).toContain(held);
    expect(answers.find((a) => a.status === 409)?.text).toBe(`${held}\n`);
  });

  it('keeps its state and key across a restart, and refuses to run on a corrupt state', async () => {
    const held = (await running.witness.latest(ORIGIN))!.treeSize;
    const verifierKey = running.verifierKey;
    await running.close();
    running = await startWitness(env);
    expect(running.verifierKey).toBe(verifierKey);
    expect(await submit(body(0, 290))).toMatchObject({ status: 409, text: `${held}\n` });
    expect((await submit(body(held, 290))).status).toBe(200);

    const [file] = readdirSync(env.WITNESS_STATE_DIR);
    writeFileSync(join(env.WITNESS_STATE_DIR, file!), '{"origin":');
    const answer = await submit(body(290, 300));
    expect(answer.status).toBe(500);
    expect(answer.text).not.toContain('corrupt'); // the reason is in the witness's log, not the answer
  });

  it('trusts the log keys of WITNESS_LOG_KEYS_FILE and publishes its own key to WITNESS_PUBLISH_KEY_FILE; a missing file stops the start', async () => {
    const dir = join(scratch, 'files');
    mkdirSync(dir);
    const other = generateKeyPairSync('ed25519');
    const otherOrigin = 'audit.other-test.local/v1';
    writeFileSync(join(dir, 'logs.vkey'), `${encodeVerifierKey(otherOrigin, other.publicKey)}\n`);
    const fileEnv = loadEnv({
      WITNESS_NAME: 'witness.test/files',
      WITNESS_LOG_KEYS_FILE: join(dir, 'logs.vkey'),
      WITNESS_PUBLISH_KEY_FILE: join(dir, 'witness.vkey'),
      WITNESS_STATE_DIR: join(dir, 'state'),
      WITNESS_SIGNING_KEY_FILE: join(dir, 'witness.key'),
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      LOG_LEVEL: 'silent',
    });
    const fromFiles = await startWitness(fileEnv);
    try {
      expect(readFileSync(join(dir, 'witness.vkey'), 'utf8')).toBe(`${fromFiles.verifierKey}\n`);
      const note = checkpointNote(3, leaves, other.privateKey, otherOrigin);
      const res = await fetch(`${fromFiles.url}/add-checkpoint`, {
        method: 'POST',
        body: encodeAddCheckpointRequest({ oldSize: 0, proof: [], note }),
      });
      expect(res.status).toBe(200);
      // The key of WITNESS_LOG_KEYS is not trusted here: that log is unknown (404).
      expect((await fetch(`${fromFiles.url}/add-checkpoint`, { method: 'POST', body: body(0, 3) })).status).toBe(404);
    } finally {
      await fromFiles.close();
    }
    await expect(startWitness({ ...fileEnv, WITNESS_LOG_KEYS_FILE: join(dir, 'missing.vkey') })).rejects.toThrow(
      /WITNESS_LOG_KEYS_FILE: cannot read .*missing\.vkey: ENOENT/,
    );
  });
});
