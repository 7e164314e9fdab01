import { generateKeyPairSync, sign } from 'node:crypto';

import { describe, expect, it } from '@jest/globals';

import { signCheckpoint, verifyCheckpoint } from './checkpoint.js';
import { cosignNote, encodeAddCheckpointRequest, parseAddCheckpointRequest, verifyCosignature } from './cosignature.js';
import { EMPTY_ROOT_HASH, sha256 } from './hash.js';
import { encodeVerifierKey, type NoteSigner, parseVerifierKey, signNoteWith } from './signed-note.js';

function signer(): NoteSigner {
  const pair = generateKeyPairSync('ed25519');
  return { publicKey: pair.publicKey, sign: (m) => Promise.resolve(sign(null, m, pair.privateKey)) };
}

const log = generateKeyPairSync('ed25519');
const checkpoint = {
  origin: 'audit.example/v1',
  treeSize: 42,
  rootHash: sha256(Buffer.from('root')),
  timestamp: new Date('2026-12-04T10:00:00.000Z'),
};

describe('verifier keys', () => {
  // golang.org/x/mod/sumdb/note's example verifier key: parsed, and encoded back byte for byte.
  const GO_VERIFIER_KEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';

  it('round-trips the Go note package example', () => {
    const key = parseVerifierKey(GO_VERIFIER_KEY);
    expect(key).toMatchObject({ name: 'PeterNeumann', type: 1 });
    expect(encodeVerifierKey(key.name, key.publicKey)).toBe(GO_VERIFIER_KEY);
  });

  it('refuses a key whose id does not match, a wrong length or an unknown type', () => {
    expect(() => parseVerifierKey(GO_VERIFIER_KEY.replace('c74f20a3', 'c74f20a4'))).toThrow('does not match');
    expect(() => parseVerifierKey('PeterNeumann+c74f20a3+ARpc2Q==')).toThrow('Ed25519');
    expect(() => parseVerifierKey('no-plus-signs')).toThrow('verifier key');
    const witness = signer();
    const vkey = encodeVerifierKey('witness.example/w1', witness.publicKey, 0x04);
    expect(parseVerifierKey(vkey)).toMatchObject({ name: 'witness.example/w1', type: 4 });
  });
});

describe('cosignatures (C2SP tlog-cosignature, Ed25519)', () => {
  it('adds a line the witness key verifies and the log key ignores', async () => {
    const witness = signer();
    const note = signCheckpoint(checkpoint, log.privateKey);
    const line = await cosignNote(note, witness, 'witness.example/w1', 1_764_000_000);
    const cosigned = note + line;
    expect(verifyCosignature(cosigned, witness.publicKey, 'witness.example/w1')).toEqual({
      ok: true,
      timestamp: 1_764_000_000,
    });
    expect(verifyCheckpoint(cosigned, log.publicKey).ok).toBe(true);
    // Not the witness it claims, or another witness's key: not a cosignature of theirs.
    expect(verifyCosignature(cosigned, witness.publicKey, 'witness.example/w2')).toMatchObject({ ok: false });
    expect(verifyCosignature(cosigned, signer().publicKey, 'witness.example/w1')).toMatchObject({ ok: false });
    // The log's own signature is no cosignature.
    expect(verifyCosignature(note, log.publicKey, checkpoint.origin)).toMatchObject({ ok: false });
  });

  it('fails for another checkpoint carrying a copied cosignature line', async () => {
    const witness = signer();
    const line = await cosignNote(signCheckpoint(checkpoint, log.privateKey), witness, 'w', 5);
    const other = signCheckpoint({ ...checkpoint, treeSize: 43 }, log.privateKey);
    expect(verifyCosignature(other + line, witness.publicKey, 'w')).toEqual({
      ok: false,
      reason: 'the cosignature does not match the checkpoint',
    });
  });

  it('signs with a key-store signer the same way as with a key', async () => {
    const s = signer();
    const text = 'hello\n';
    const note = await signNoteWith(text, s, 'k');
    expect(note.startsWith(`${text}\n\u2014 k `)).toBe(true);
  });
});

describe('add-checkpoint requests (C2SP tlog-witness)', () => {
  it('round-trips old size, proof and note', () => {
    const note = signCheckpoint(checkpoint, log.privateKey);
    const proof = [sha256(Buffer.from('a')), sha256(Buffer.from('b'))];
    const body = encodeAddCheckpointRequest({ oldSize: 20, proof, note });
    expect(body.startsWith('old 20\n')).toBe(true);
    expect(parseAddCheckpointRequest(body)).toEqual({ oldSize: 20, proof, note });
    expect(parseAddCheckpointRequest(`old 0\n\n${note}`)).toEqual({ oldSize: 0, proof: [], note });
  });

  it('refuses malformed bodies', () => {
    const note = signCheckpoint(checkpoint, log.privateKey);
    expect(() => parseAddCheckpointRequest(note)).toThrow();
    expect(() => parseAddCheckpointRequest(`old 01\n\n${note}`)).toThrow('old <size>');
    expect(() => parseAddCheckpointRequest(`old -1\n\n${note}`)).toThrow('old <size>');
    expect(() => parseAddCheckpointRequest(`old 1\nnot-base64!\n\n${note}`)).toThrow('proof line');
    expect(() =>
      parseAddCheckpointRequest(`old 1\n${EMPTY_ROOT_HASH.subarray(1).toString('base64')}\n\n${note}`),
    ).toThrow('proof line');
    const tooMany = Array.from({ length: 64 }, () => `${EMPTY_ROOT_HASH.toString('base64')}\n`).join('');
    expect(() => parseAddCheckpointRequest(`old 1\n${tooMany}\n${note}`)).toThrow('63');
  });
});
