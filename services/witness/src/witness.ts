import type { Signer } from '@context-gateway/crypto';
import {
  type AddCheckpointRequest,
  cosignNote,
  EMPTY_ROOT_HASH,
  hashesEqual,
  noteText,
  openNote,
  parseAddCheckpointRequest,
  parseCheckpointHead,
  type VerifierKey,
  verifyConsistency,
} from '@context-gateway/merkle-log';
import type { Logger } from 'pino';

import type { CheckpointStore } from './checkpoint-store.js';

/** The answer to one add-checkpoint request, in tlog-witness's status codes. */
export type AddCheckpointAnswer =
  | { status: 200; cosignature: string }
  /** 409 with the size the witness holds (`text/x.tlog.size`). */
  | { status: 409; size: number; code: 'old_size_mismatch' | 'root_mismatch'; detail: string }
  | { status: 400 | 403 | 404 | 422; code: string; detail: string };

/**
 * A C2SP tlog-witness: for each log it trusts (its origin and verifier keys) it keeps the
 * latest checkpoint it cosigned, and cosigns a new one only when the log signed it and a
 * consistency proof shows it extends that one. So a log rewritten or cut short after the
 * witness saw it can no longer show a checkpoint the witness cosigned.
 *
 * Checking a submission against the stored state and storing the new state happen under
 * one lock per log: two racing submissions cannot roll the state back (the spec's race).
 * One witness process per state directory (deploy/: a one-replica StatefulSet).
 */
export class Witness {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly options: {
      name: string;
      signer: Signer;
      logs: ReadonlyMap<string, readonly VerifierKey[]>;
      store: CheckpointStore;
      logger: Logger;
      /** POSIX seconds; tests pass their own clock. */
      now?: () => number;
    },
  ) {}

  async addCheckpoint(body: string): Promise<AddCheckpointAnswer> {
    let request: AddCheckpointRequest;
    let head: ReturnType<typeof parseCheckpointHead>;
    try {
      request = parseAddCheckpointRequest(body);
      head = parseCheckpointHead(noteText(request.note));
    } catch (error) {
      return { status: 400, code: 'malformed_request', detail: (error as Error).message };
    }
    if (!request.note.endsWith('\n')) return { status: 400, code: 'malformed_request', detail: 'not a signed note' };
    const keys = this.options.logs.get(head.origin);
    if (!keys) return { status: 404, code: 'unknown_log', detail: `this witness does not witness ${head.origin}` };
    if (!keys.some((key) => openNote(request.note, key.publicKey, key.name).ok)) {
      return { status: 403, code: 'bad_signature', detail: `no signature by a trusted key of ${head.origin}` };
    }
    if (request.oldSize > head.treeSize) {
      return { status: 400, code: 'old_size_too_large', detail: 'the old size is larger than the checkpoint' };
    }
    return this.serialized(head.origin, () => this.extend(request, head));
  }

  /** The latest checkpoint cosigned for `origin`, with the cosignature: what a verifier compares the log with. */
  latest(origin: string) {
    return this.options.store.get(origin);
  }

  private async extend(
    request: AddCheckpointRequest,
    head: ReturnType<typeof parseCheckpointHead>,
  ): Promise<AddCheckpointAnswer> {
    const { store, logger } = this.options;
    const held = await store.get(head.origin);
    const heldSize = held?.treeSize ?? 0;
    if (request.oldSize !== heldSize) {
      return {
        status: 409,
        size: heldSize,
        code: 'old_size_mismatch',
        detail: `this witness holds ${head.origin} at size ${heldSize}`,
      };
    }
    const heldRoot = held ? Buffer.from(held.rootHash, 'base64') : EMPTY_ROOT_HASH;
    if (request.oldSize === head.treeSize && held && !hashesEqual(heldRoot, head.rootHash)) {
      logger.warn(
        { origin: head.origin, treeSize: head.treeSize },
        'witness: a checkpoint of the size already held with another root (a forked log)',
      );
      return { status: 409, size: heldSize, code: 'root_mismatch', detail: 'another root for the size already held' };
    }
    if (!verifyConsistency(request.oldSize, head.treeSize, heldRoot, head.rootHash, request.proof)) {
      // The log signed it, so this is evidence of a rewritten or forked log: keep it in the log.
      logger.warn(
        { origin: head.origin, oldSize: request.oldSize, treeSize: head.treeSize, note: request.note },
        'witness: a signed checkpoint that does not extend the one held',
      );
      return {
        status: 422,
        code: 'inconsistent',
        detail: `the consistency proof from ${request.oldSize} to ${head.treeSize} does not verify`,
      };
    }
    const cosignedAt = this.now();
    const cosignature = await cosignNote(request.note, this.options.signer, this.options.name, cosignedAt);
    // Persisted before the answer: a cosignature the witness could later forget would let the log roll back.
    await store.put({
      origin: head.origin,
      treeSize: head.treeSize,
      rootHash: head.rootHash.toString('base64'),
      cosignedNote: request.note + cosignature,
      cosignedAt,
    });
    logger.info({ origin: head.origin, oldSize: request.oldSize, treeSize: head.treeSize }, 'witness: cosigned');
    return { status: 200, cosignature };
  }

  private now(): number {
    return this.options.now?.() ?? Math.floor(Date.now() / 1000);
  }

  /** Runs `fn` after every earlier call for the same origin has finished. */
  private async serialized<T>(origin: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(origin) ?? Promise.resolve();
    const current = previous.then(fn, fn);
    const settled = current.catch(() => undefined);
    this.locks.set(origin, settled);
    try {
      return await current;
    } finally {
      if (this.locks.get(origin) === settled) this.locks.delete(origin);
    }
  }
}
