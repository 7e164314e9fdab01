import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';

import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { signCheckpoint, type VerifiedCheckpoint, verifyCheckpoint } from './checkpoint.js';
import { leafHash } from './hash.js';
import { canonicalEntryBytes, decodeEntryBytes, LogWriter } from './log-entry.js';
import { type StoredEntry, verifyLog } from './verify-log.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const ORIGIN = 'audit.test/v1';

/** A log of `size` entries as the audit service would store it, with checkpoints signed along the way. */
function buildLog(size: number, checkpointAt: readonly number[]) {
  const writer = LogWriter.empty();
  const rows: StoredEntry[] = [];
  const checkpoints: VerifiedCheckpoint[] = [];
  if (checkpointAt.includes(0)) checkpoints.push(checkpoint(writer));
  for (let i = 0; i < size; i += 1) {
    const { index, eventId, canonicalBytes, leafHash: hash } = writer.append(`evt-${i}`, { action: 'data.read', n: i });
    rows.push({ index, eventId, canonicalBytes, storedLeafHash: hash });
    if (checkpointAt.includes(i + 1)) checkpoints.push(checkpoint(writer));
  }
  return { rows, checkpoints, writer };
}

function checkpoint(writer: LogWriter): VerifiedCheckpoint {
  const note = signCheckpoint(
    { origin: ORIGIN, treeSize: writer.size, rootHash: writer.root(), timestamp: new Date() },
    privateKey,
  );
  const verified = verifyCheckpoint(note, publicKey, { origin: ORIGIN });
  if (!verified.ok) throw new Error(verified.reason);
  return verified.checkpoint;
}

/** Rows as `SELECT … ORDER BY index` returns them after someone renumbered the column. */
const renumbered = (rows: readonly StoredEntry[]): StoredEntry[] => rows.map((row, i) => ({ ...row, index: i }));

/** The rows as an async stream, the way a database cursor hands them over. */
function streamed(rows: readonly StoredEntry[]): AsyncIterable<StoredEntry> {
  return Readable.from(rows);
}

/** Rewrites entry `at`'s event, keeping its chain fields, as someone with SQL access could. */
function forgeContent(row: StoredEntry, fixStoredHash: boolean): StoredEntry {
  const entry = decodeEntryBytes(row.canonicalBytes)!;
  const canonicalBytes = canonicalEntryBytes({ ...entry, event: { action: 'data.read', n: -1 } });
  return { ...row, canonicalBytes, storedLeafHash: fixStoredHash ? leafHash(canonicalBytes) : row.storedLeafHash };
}

const SIZE = 20;
const CHECKPOINTS = [8, 16, 20];

describe('verifyLog', () => {
  it('accepts an untouched log read from a cursor and recomputes its root', async () => {
    const { rows, checkpoints, writer } = buildLog(SIZE, CHECKPOINTS);
    const result = await verifyLog(streamed(rows), checkpoints);
    expect(result).toEqual({ ok: true, treeSize: SIZE, rootHash: writer.root(), checkpointsMatched: 3 });
    expect(await verifyLog([], [])).toMatchObject({ ok: true, treeSize: 0 });
  });

  it('names an edited entry whose stored hash was left alone', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    rows[5] = forgeContent(rows[5]!, false);
    expect(await verifyLog(rows, checkpoints)).toMatchObject({ ok: false, kind: 'edited', index: 5, eventId: 'evt-5' });
  });

  it('names an edited entry even when its stored hash was recomputed too', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    rows[5] = forgeContent(rows[5]!, true);
    expect(await verifyLog(rows, checkpoints)).toMatchObject({ ok: false, kind: 'edited', index: 5, eventId: 'evt-5' });
  });

  it('names a row whose event id column no longer matches its hashed content', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    rows[7] = { ...rows[7]!, eventId: 'evt-other' };
    expect(await verifyLog(rows, checkpoints)).toMatchObject({ ok: false, kind: 'edited', index: 7 });
  });

  it('names the first deleted entry, with or without the index column renumbered', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    const withoutSixToEight = rows.filter((_, i) => i < 6 || i > 8);
    expect(await verifyLog(withoutSixToEight, checkpoints)).toMatchObject({ ok: false, kind: 'deleted', index: 6 });
    expect(await verifyLog(renumbered(withoutSixToEight), checkpoints)).toMatchObject({
      ok: false,
      kind: 'deleted',
      index: 6,
    });
  });

  it('notices entries cut off the end when a signed checkpoint covered them', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    expect(await verifyLog(rows.slice(0, 18), checkpoints)).toMatchObject({ ok: false, kind: 'deleted', index: 18 });
  });

  it('names a forged row inserted into the middle, even one that chains to its predecessor', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    const forgedBytes = canonicalEntryBytes({
      index: 5,
      eventId: 'forged',
      prevLeafHash: rows[4]!.storedLeafHash,
      event: { action: 'x' },
    });
    const forged = { index: 5, eventId: 'forged', canonicalBytes: forgedBytes, storedLeafHash: leafHash(forgedBytes) };
    const inserted = renumbered([...rows.slice(0, 5), forged, ...rows.slice(5)]);
    expect(await verifyLog(inserted, checkpoints)).toMatchObject({
      ok: false,
      kind: 'inserted',
      index: 5,
      eventId: 'forged',
    });

    const badChainBytes = canonicalEntryBytes({
      index: 5,
      eventId: 'forged',
      prevLeafHash: rows[0]!.storedLeafHash,
      event: {},
    });
    const badChain = {
      index: 5,
      eventId: 'forged',
      canonicalBytes: badChainBytes,
      storedLeafHash: leafHash(badChainBytes),
    };
    expect(await verifyLog(renumbered([...rows.slice(0, 5), badChain, ...rows.slice(5)]), checkpoints)).toMatchObject({
      ok: false,
      kind: 'inserted',
      index: 5,
      eventId: 'forged',
    });
  });

  it('names a replayed copy of an earlier or a later entry as inserted', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    for (const copied of [2, 4, 12]) {
      const replayed = renumbered([...rows.slice(0, 5), rows[copied]!, ...rows.slice(5)]);
      expect(await verifyLog(replayed, checkpoints)).toMatchObject({
        ok: false,
        kind: 'inserted',
        index: 5,
        eventId: `evt-${copied}`,
      });
    }
  });

  it('names the first position of two swapped entries as reordered', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    for (const [i, j] of [
      [5, 9],
      [5, 6],
      [0, 19],
    ] as const) {
      const swapped = [...rows];
      swapped[i] = rows[j]!;
      swapped[j] = rows[i]!;
      expect(await verifyLog(renumbered(swapped), checkpoints)).toMatchObject({
        ok: false,
        kind: 'reordered',
        index: i,
      });
    }
  });

  it('names an entry moved further down, or up, as reordered', async () => {
    const { rows, checkpoints } = buildLog(SIZE, CHECKPOINTS);
    const movedDown = [...rows.slice(0, 5), ...rows.slice(6), rows[5]!];
    expect(await verifyLog(renumbered(movedDown), checkpoints)).toMatchObject({
      ok: false,
      kind: 'reordered',
      index: 5,
      eventId: 'evt-5',
    });
    const movedUp = [...rows.slice(0, 5), rows[15]!, ...rows.slice(5, 15), ...rows.slice(16)];
    expect(await verifyLog(renumbered(movedUp), checkpoints)).toMatchObject({
      ok: false,
      kind: 'reordered',
      index: 5,
      eventId: 'evt-15',
    });
  });

  it('catches a consistent rewrite of history only a signed checkpoint can reveal', async () => {
    const original = buildLog(SIZE, CHECKPOINTS);
    // Rebuild the whole chain from entry 10 with one changed event: every row is self-consistent.
    const writer = LogWriter.empty();
    const rewritten = original.rows.map((_, i) => {
      const appended = writer.append(`evt-${i}`, { action: 'data.read', n: i === 10 ? -1 : i });
      return {
        index: i,
        eventId: appended.eventId,
        canonicalBytes: appended.canonicalBytes,
        storedLeafHash: appended.leafHash,
      };
    });
    expect(await verifyLog(rewritten, [])).toMatchObject({ ok: true });
    expect(await verifyLog(rewritten, original.checkpoints)).toMatchObject({
      ok: false,
      kind: 'checkpoint_mismatch',
      index: 8,
    });
  });

  it('reports the right kind and first index for random single tampering (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 2, max: 60 })
          .chain((size) =>
            fc.tuple(
              fc.constant(size),
              fc.constantFrom('edited', 'deleted', 'reordered', 'inserted' as const),
              fc.integer({ min: 0, max: size - 1 }),
              fc.integer({ min: 0, max: size - 1 }),
            ),
          ),
        async ([size, kind, a, b]) => {
          const { rows, checkpoints } = buildLog(size, [size]);
          let tampered: StoredEntry[];
          let expected: number;
          switch (kind) {
            case 'edited':
              tampered = [...rows];
              tampered[a] = forgeContent(rows[a]!, b % 2 === 0);
              expected = a;
              break;
            case 'deleted':
              tampered = renumbered(rows.filter((_, i) => i !== a));
              expected = a;
              break;
            case 'reordered': {
              if (a === b) return;
              tampered = [...rows];
              tampered[a] = rows[b]!;
              tampered[b] = rows[a]!;
              tampered = renumbered(tampered);
              expected = Math.min(a, b);
              break;
            }
            case 'inserted':
              tampered = renumbered([...rows.slice(0, a), rows[b]!, ...rows.slice(a)]);
              // A copy of entry a put right before it is indistinguishable from it: the stored
              // log first differs from the real one at a + 1, where the second copy sits.
              expected = b === a ? a + 1 : a;
              break;
          }
          const result = await verifyLog(tampered, checkpoints);
          if (kind === 'edited' && b % 2 === 0 && a === size - 1) {
            // The newest entry rewritten with its hash has no successor to contradict it:
            // only the signed checkpoint does, and it covers entries 0..size-1.
            expect(result).toMatchObject({ ok: false, kind: 'checkpoint_mismatch', index: 0 });
          } else {
            expect(result).toMatchObject({ ok: false, kind, index: expected });
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
