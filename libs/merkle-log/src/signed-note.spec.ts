import { createPrivateKey, createPublicKey } from 'node:crypto';

import { describe, expect, it } from '@jest/globals';

import { ed25519KeyId, openNote, signNote } from './signed-note.js';

/*
 * The example note of golang.org/x/mod/sumdb/note (note.go package docs and note_test.go):
 * an independent implementation's output. Ed25519 signatures are deterministic (RFC 8032),
 * so matching it byte for byte means Go verifiers and witnesses accept our checkpoints.
 */
const GO_SIGNER_KEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_VERIFIER_KEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE =
  GO_TEXT +
  '\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

// Go key strings are `[PRIVATE+KEY+]name+hash+base64(0x01 || 32 key bytes)`, and the base64
// may itself contain '+'. The bytes are wrapped as PKCS#8 / SPKI DER for node:crypto.
const keyBytes = (encoded: string, fieldsBefore: number): Buffer =>
  Buffer.from(encoded.split('+').slice(fieldsBefore).join('+'), 'base64').subarray(1);
const seed = keyBytes(GO_SIGNER_KEY, 4);
const privateKey = createPrivateKey({
  key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
  format: 'der',
  type: 'pkcs8',
});
const publicKey = createPublicKey({
  key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), keyBytes(GO_VERIFIER_KEY, 2)]),
  format: 'der',
  type: 'spki',
});

describe('signed notes', () => {
  it('derive the same key id as Go', () => {
    expect(ed25519KeyId('PeterNeumann', publicKey).toString('hex')).toBe('c74f20a3');
    expect(ed25519KeyId('PeterNeumann', privateKey).toString('hex')).toBe('c74f20a3');
  });

  it('sign byte for byte like golang.org/x/mod/sumdb/note', () => {
    expect(signNote(GO_TEXT, privateKey, 'PeterNeumann')).toBe(GO_NOTE);
  });

  it("open Go's note, and refuse it once a single character changes", () => {
    expect(openNote(GO_NOTE, publicKey, 'PeterNeumann')).toEqual({ ok: true, text: GO_TEXT });
    expect(openNote(GO_NOTE.replace('cryptography', 'cryptographY'), publicKey, 'PeterNeumann').ok).toBe(false);
    expect(openNote(GO_NOTE, publicKey, 'EnochRoot')).toEqual({ ok: false, reason: 'no signature by the trusted key' });
  });

  it('refuse texts that would make the note ambiguous', () => {
    expect(() => signNote('no newline', privateKey, 'k')).toThrow('newline');
    expect(() => signNote('a\n\nb\n', privateKey, 'k')).toThrow('blank');
    expect(() => signNote('a\n', privateKey, 'has space')).toThrow('key name');
  });
});
