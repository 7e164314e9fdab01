/*
 * Checkpoints in the C2SP formats, so existing transparency-log tooling can read them:
 *  - body: C2SP tlog-checkpoint — origin line, decimal tree size line, base64 root line —
 *    plus one extension line `timestamp <ISO 8601 UTC>` (the spec leaves extension lines
 *    to the log, and a checkpoint without a time cannot answer "as of when?").
 *  - signature: C2SP signed-note with Ed25519 (signed-note.ts).
 */
import type { KeyObject } from 'node:crypto';

import { isHash } from './hash.js';
import { type NoteSigner, openNote, signNote, signNoteWith } from './signed-note.js';
import { assertCount, invalid } from './tree-math.js';

export interface Checkpoint {
  /** Names the log (e.g. `audit.context-gateway.example/v1`); stops a checkpoint of one log passing for another. */
  origin: string;
  treeSize: number;
  rootHash: Uint8Array;
  timestamp: Date;
}

declare const verified: unique symbol;
/** A checkpoint whose signature has been checked — only verifyCheckpoint makes one. */
export type VerifiedCheckpoint = Checkpoint & { readonly [verified]: true };

export type CheckpointVerification = { ok: true; checkpoint: VerifiedCheckpoint } | { ok: false; reason: string };

const TIMESTAMP_LINE = /^timestamp (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)$/;
const SIZE_LINE = /^(0|[1-9][0-9]*)$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function assertLine(name: string, value: string): void {
  // A newline would let an origin forge extra body lines; the rest keeps the note printable.
  if (value.length === 0 || !/^[\x20-\x7e]+$/.test(value)) invalid(`${name} must be non-empty printable ASCII`);
}

/** The canonical checkpoint body — exactly the bytes the signature covers. */
export function encodeCheckpoint(checkpoint: Checkpoint): string {
  assertLine('origin', checkpoint.origin);
  assertCount('tree size', checkpoint.treeSize);
  if (!isHash(checkpoint.rootHash)) invalid('root hash must be 32 bytes');
  if (Number.isNaN(checkpoint.timestamp.getTime())) invalid('timestamp must be a valid date');
  return [
    checkpoint.origin,
    String(checkpoint.treeSize),
    Buffer.from(checkpoint.rootHash).toString('base64'),
    `timestamp ${checkpoint.timestamp.toISOString()}`,
    '',
  ].join('\n');
}

/** Parses a body; only the exact canonical form is accepted, so a body has one meaning. */
export function parseCheckpoint(body: string): Checkpoint {
  const lines = body.split('\n');
  if (lines.length !== 5 || lines[4] !== '') invalid('a checkpoint has four lines, each ending in a newline');
  const [origin, size, root, time] = lines as [string, string, string, string];
  if (!SIZE_LINE.test(size)) invalid('tree size line is not a decimal number');
  const treeSize = Number(size);
  assertCount('tree size', treeSize);
  const rootHash = Buffer.from(root, 'base64');
  if (!BASE64.test(root) || rootHash.length !== 32) invalid('root line is not a base64 32-byte hash');
  const timestamp = TIMESTAMP_LINE.exec(time)?.[1];
  if (timestamp === undefined) invalid('timestamp line is malformed');
  const checkpoint: Checkpoint = { origin, treeSize, rootHash, timestamp: new Date(timestamp) };
  if (encodeCheckpoint(checkpoint) !== body) invalid('checkpoint is not in canonical form');
  return checkpoint;
}

/** Signs the checkpoint and returns the whole signed note (what gets stored and served). */
export function signCheckpoint(checkpoint: Checkpoint, privateKey: KeyObject, keyName = checkpoint.origin): string {
  return signNote(encodeCheckpoint(checkpoint), privateKey, keyName);
}

/** signCheckpoint with a key that may live in a key store (libs/crypto Signer). */
export function signCheckpointWith(
  checkpoint: Checkpoint,
  signer: NoteSigner,
  keyName = checkpoint.origin,
): Promise<string> {
  return signNoteWith(encodeCheckpoint(checkpoint), signer, keyName);
}

/**
 * Checks a signed checkpoint against one trusted key (named after the origin unless told
 * otherwise) and, if given, the origin the caller expects. Never throws on bad input.
 */
export function verifyCheckpoint(
  note: string,
  publicKey: KeyObject,
  options: { keyName?: string; origin?: string } = {},
): CheckpointVerification {
  const body = note.slice(0, note.indexOf('\n\n') + 1);
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpoint(body);
  } catch {
    return { ok: false, reason: 'malformed checkpoint body' };
  }
  if (options.origin !== undefined && checkpoint.origin !== options.origin) {
    return { ok: false, reason: 'checkpoint is for another log' };
  }
  const opened = openNote(note, publicKey, options.keyName ?? checkpoint.origin);
  if (!opened.ok) return opened;
  return { ok: true, checkpoint: checkpoint as VerifiedCheckpoint };
}

/** What a witness reads of any C2SP tlog-checkpoint: origin, size, root; extension lines are the log's business. */
export interface CheckpointHead {
  origin: string;
  treeSize: number;
  rootHash: Buffer;
}

/**
 * Parses the first three lines of a checkpoint body as C2SP tlog-checkpoint lays them out,
 * accepting any extension lines after them (other logs' checkpoints need not carry our
 * timestamp line). Throws (validation_failed) on anything else.
 */
export function parseCheckpointHead(body: string): CheckpointHead {
  if (!body.endsWith('\n')) invalid('a checkpoint body ends in a newline');
  const [origin, size, root, ...extensions] = body.slice(0, -1).split('\n');
  if (origin === undefined || size === undefined || root === undefined)
    invalid('a checkpoint has at least three lines');
  assertLine('origin', origin);
  if (!SIZE_LINE.test(size) || !Number.isSafeInteger(Number(size))) invalid('the size line is a decimal tree size');
  const rootHash = Buffer.from(root, 'base64');
  if (!BASE64.test(root) || rootHash.length !== 32) invalid('the root line is a base64 32-byte hash');
  if (extensions.some((line) => line.length === 0)) invalid('a checkpoint has no empty lines');
  return { origin, treeSize: Number(size), rootHash };
}
