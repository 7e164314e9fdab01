/*
 * Witness cosignatures and the witness's submission format, after C2SP tlog-cosignature
 * (Ed25519, `cosignature/v1`) and tlog-witness (`add-checkpoint`). A cosignature is an
 * extra signature line on a checkpoint: the witness's statement that, at its timestamp,
 * this is the largest tree it has seen for the origin and that it is a consistent
 * extension of every tree it saw before.
 */
import { type KeyObject, verify } from 'node:crypto';

import { isHash } from './hash.js';
import { COSIGNATURE_ALGORITHM, noteKeyId, type NoteSigner, SIGNATURE_PREFIX } from './signed-note.js';
import { invalid } from './tree-math.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
/** tlog-witness: a client never sends more proof lines than a 2^63-leaf tree needs. */
const MAX_PROOF_LINES = 63;

export type CosignatureVerification = { ok: true; timestamp: number } | { ok: false; reason: string };

/** The note's text: everything up to and including the newline before the blank line. */
export function noteText(note: string): string {
  const split = note.indexOf('\n\n');
  if (split < 0) invalid('not a signed note');
  return note.slice(0, split + 1);
}

function cosignedMessage(text: string, timestamp: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${text}`, 'utf8');
}

/** The witness's signature line over `note`'s text, at `timestamp` (POSIX seconds, never 0). */
export async function cosignNote(
  note: string,
  signer: NoteSigner,
  witnessName: string,
  timestamp: number,
): Promise<string> {
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) invalid('a cosignature timestamp is positive seconds');
  const signature = await signer.sign(cosignedMessage(noteText(note), timestamp));
  const time = Buffer.alloc(8);
  time.writeBigUInt64BE(BigInt(timestamp));
  const blob = Buffer.concat([noteKeyId(witnessName, COSIGNATURE_ALGORITHM, signer.publicKey), time, signature]);
  return `${SIGNATURE_PREFIX}${witnessName} ${blob.toString('base64')}\n`;
}

/**
 * Finds the cosignature of the witness named `witnessName` with `publicKey` on `note` and
 * checks it. Other signature lines are skipped. Never throws: notes come from storage an
 * attacker may have touched.
 */
export function verifyCosignature(note: string, publicKey: KeyObject, witnessName: string): CosignatureVerification {
  const split = note.indexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) return { ok: false, reason: 'not a signed note' };
  const text = note.slice(0, split + 1);
  let keyId: Buffer;
  try {
    keyId = noteKeyId(witnessName, COSIGNATURE_ALGORITHM, publicKey);
  } catch {
    return { ok: false, reason: 'not an Ed25519 key' };
  }
  for (const line of note.slice(split + 2, -1).split('\n')) {
    if (!line.startsWith(SIGNATURE_PREFIX)) return { ok: false, reason: 'malformed signature line' };
    const [name, encoded, extra] = line.slice(SIGNATURE_PREFIX.length).split(' ');
    if (name !== witnessName || encoded === undefined || extra !== undefined || !BASE64.test(encoded)) continue;
    const blob = Buffer.from(encoded, 'base64');
    if (blob.length !== 4 + 8 + 64 || !blob.subarray(0, 4).equals(keyId)) continue;
    const timestamp = Number(blob.readBigUInt64BE(4));
    return verify(null, cosignedMessage(text, timestamp), publicKey, blob.subarray(12))
      ? { ok: true, timestamp }
      : { ok: false, reason: 'the cosignature does not match the checkpoint' };
  }
  return { ok: false, reason: `no cosignature by witness ${witnessName}` };
}

/** An `add-checkpoint` request: the size the witness is believed to hold, a consistency proof from it, the signed checkpoint. */
export interface AddCheckpointRequest {
  oldSize: number;
  proof: Buffer[];
  note: string;
}

export function encodeAddCheckpointRequest(request: AddCheckpointRequest): string {
  if (request.proof.length > MAX_PROOF_LINES || !request.proof.every((h) => isHash(h)))
    invalid('bad consistency proof');
  const proofLines = request.proof.map((h) => `${Buffer.from(h).toString('base64')}\n`).join('');
  return `old ${request.oldSize}\n${proofLines}\n${request.note}`;
}

/** Parses a request body exactly as tlog-witness lays it out; throws (validation_failed) otherwise. */
export function parseAddCheckpointRequest(body: string): AddCheckpointRequest {
  const blank = body.indexOf('\n\n');
  if (blank < 0) invalid('expected the old size, proof lines, a blank line and the checkpoint');
  const [oldLine, ...proofLines] = body.slice(0, blank).split('\n');
  const old = /^old (.+)$/.exec(oldLine ?? '')?.[1];
  if (old === undefined || !DECIMAL.test(old) || !Number.isSafeInteger(Number(old)))
    invalid('the first line is `old <size>`');
  if (proofLines.length > MAX_PROOF_LINES) invalid(`more than ${MAX_PROOF_LINES} proof lines`);
  const proof = proofLines.map((line) => {
    const hash = Buffer.from(line, 'base64');
    if (!BASE64.test(line) || hash.length !== 32) invalid('a proof line is one base64 SHA-256 hash');
    return hash;
  });
  return { oldSize: Number(old), proof, note: body.slice(blank + 2) };
}
