import { generateKeyPairSync } from 'node:crypto';

import { describe, expect, it } from '@jest/globals';

import {
  type Checkpoint,
  encodeCheckpoint,
  parseCheckpoint,
  parseCheckpointHead,
  signCheckpoint,
  verifyCheckpoint,
} from './checkpoint.js';
import { ROOT_HASHES } from './rfc6962-vectors.fixture.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');

const checkpoint: Checkpoint = {
  origin: 'audit.context-gateway.test/v1',
  treeSize: 8,
  rootHash: ROOT_HASHES[8]!,
  timestamp: new Date('2026-11-25T08:00:00.123Z'),
};

describe('checkpoint encoding', () => {
  it('is the C2SP tlog-checkpoint body plus a timestamp line', () => {
    expect(encodeCheckpoint(checkpoint)).toBe(
      'audit.context-gateway.test/v1\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\ntimestamp 2026-11-25T08:00:00.123Z\n',
    );
    expect(parseCheckpoint(encodeCheckpoint(checkpoint))).toEqual({
      ...checkpoint,
      rootHash: Buffer.from(checkpoint.rootHash),
    });
  });

  it('rejects non-canonical bodies so one checkpoint has one encoding', () => {
    const body = encodeCheckpoint(checkpoint);
    expect(() => parseCheckpoint(body.replace('\n8\n', '\n08\n'))).toThrow('decimal');
    expect(() => parseCheckpoint(body.trimEnd())).toThrow('four lines');
    expect(() => parseCheckpoint(body.replace('.123Z', 'Z'))).toThrow('timestamp');
    expect(() => encodeCheckpoint({ ...checkpoint, origin: 'evil\n99' })).toThrow('printable');
  });
});

describe('signed checkpoints', () => {
  it('verify with the signing key and give back the checkpoint', () => {
    const note = signCheckpoint(checkpoint, privateKey);
    expect(note.startsWith(encodeCheckpoint(checkpoint) + '\n\u2014 audit.context-gateway.test/v1 ')).toBe(true);
    const result = verifyCheckpoint(note, publicKey, { origin: checkpoint.origin });
    expect(result.ok && result.checkpoint.treeSize).toBe(8);
  });

  it('fail when any field of the body is modified', () => {
    const note = signCheckpoint(checkpoint, privateKey);
    const tampered = [
      note.replace('\n8\n', '\n9\n'),
      note.replace('XcnaeacG', 'YcnaeacG'),
      note.replace('08:00:00.123Z', '08:00:01.123Z'),
      note.replace('audit.context-gateway.test/v1\n', 'audit.context-gateway.test/v2\n'),
    ];
    for (const modified of tampered) {
      expect(modified).not.toBe(note);
      expect(verifyCheckpoint(modified, publicKey).ok).toBe(false);
    }
  });

  it('fail with another key, another origin, or a mangled signature', () => {
    const note = signCheckpoint(checkpoint, privateKey);
    expect(verifyCheckpoint(note, other.publicKey)).toEqual({ ok: false, reason: 'no signature by the trusted key' });
    expect(verifyCheckpoint(note, publicKey, { origin: 'another/log' }).ok).toBe(false);
    const sigStart = note.lastIndexOf(' ') + 1;
    const sig = Buffer.from(note.slice(sigStart, -1), 'base64');
    sig[10]! ^= 1;
    expect(verifyCheckpoint(note.slice(0, sigStart) + sig.toString('base64') + '\n', publicKey)).toEqual({
      ok: false,
      reason: 'signature does not match the note',
    });
  });

  it('accept a note that also carries a witness cosignature, ignoring it', () => {
    const note = signCheckpoint(checkpoint, privateKey);
    const witnessLine = signCheckpoint(checkpoint, other.privateKey, 'witness.example').split('\n\n')[1]!;
    expect(verifyCheckpoint(note + witnessLine, publicKey).ok).toBe(true);
    expect(verifyCheckpoint(note + witnessLine, other.publicKey, { keyName: 'witness.example' }).ok).toBe(true);
  });

  it('refuse to sign with anything but an Ed25519 private key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => signCheckpoint(checkpoint, rsa.privateKey)).toThrow('Ed25519');
    expect(() => signCheckpoint(checkpoint, publicKey)).toThrow('Ed25519');
  });
});

describe('checkpoint heads (any C2SP checkpoint, as a witness reads it)', () => {
  const root = Buffer.from(ROOT_HASHES[8]!).toString('base64');

  it("reads ours and another log's, extension lines or not", () => {
    expect(parseCheckpointHead(encodeCheckpoint(checkpoint))).toEqual({
      origin: checkpoint.origin,
      treeSize: 8,
      rootHash: Buffer.from(ROOT_HASHES[8]!),
    });
    expect(parseCheckpointHead(`example.com/log\n20852163\n${root}\n`).treeSize).toBe(20_852_163);
    expect(parseCheckpointHead(`example.com/log\n0\n${root}\nsome extension\nanother\n`).origin).toBe(
      'example.com/log',
    );
  });

  it.each([
    ['no final newline', `o\n1\n${root}`],
    ['two lines', 'o\n1\n'],
    ['a leading zero', `o\n01\n${root}\n`],
    ['a size past 2^53', `o\n9007199254740993\n${root}\n`],
    ['a short root', 'o\n1\nAAAA\n'],
    ['an empty origin', `\n1\n${root}\n`],
    ['an empty extension line', `o\n1\n${root}\n\nx\n`],
  ])('refuses %s', (_why, body) => {
    expect(() => parseCheckpointHead(body)).toThrow();
  });
});
