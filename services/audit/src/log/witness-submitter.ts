import {
  encodeAddCheckpointRequest,
  fetchConsistencyProof,
  SIGNATURE_PREFIX,
  verifyCosignature,
} from '@context-gateway/merkle-log';
import { LOGGER, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { Pool } from 'pg';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { LogRepository } from './log.repository.js';
import { parsePinnedKey, type PinnedKey } from './pinned-key.js';
import { WitnessMetrics, type WitnessOutcome } from './witness.metrics.js';

/** A checkpoint the writer stored, to be cosigned. */
export interface SignedCheckpoint {
  treeSize: number;
  note: string;
}

/** The witness answered, and what it said is evidence against the log (not an outage). */
class WitnessDisagrees extends Error {
  constructor(
    readonly outcome: Extract<WitnessOutcome, 'refused' | 'ahead'>,
    message: string,
  ) {
    super(message);
  }
}

/** How many 409 answers (the witness holds another size) one submission follows. */
const MAX_SIZE_ROUNDS = 3;

/**
 * Sends every signed checkpoint to the witness (C2SP tlog-witness `add-checkpoint`) with a
 * consistency proof from the size the witness holds, checks the cosignature it answers with
 * against the witness's pinned key, and stores it beside the checkpoint.
 *
 * In the background of the writer: a slow or absent witness never holds the log up. Only the
 * latest checkpoint matters (a witness cosigning it vouches for every earlier tree), so while
 * one submission runs, newer checkpoints replace the waiting one; a failed submission is
 * retried after AUDIT_WITNESS_RETRY_MS. A witness holding a larger tree than the log, or
 * refusing the log's own signed checkpoint, is logged as an error: the log was truncated,
 * rewritten, or the witness serves another log under this origin.
 */
@Injectable()
export class WitnessSubmitter implements OnModuleDestroy {
  private readonly witness: (PinnedKey & { url: string }) | undefined;
  /** The size the witness was last seen to hold. */
  private heldSize: number | undefined;
  private waiting: SignedCheckpoint | undefined;
  private running: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly metrics: WitnessMetrics,
  ) {
    if (env.AUDIT_WITNESS_URL !== undefined && env.AUDIT_WITNESS_KEY !== undefined) {
      this.witness = { url: env.AUDIT_WITNESS_URL, ...parsePinnedKey(env.AUDIT_WITNESS_KEY, { type: 0x04 }) };
    }
  }

  /** Called once a checkpoint is stored. Returns at once. */
  checkpointSigned(checkpoint: SignedCheckpoint): void {
    if (!this.witness || this.closed) return;
    if (this.waiting && this.waiting.treeSize > checkpoint.treeSize) return;
    this.waiting = checkpoint;
    this.kick();
  }

  /** Resolves once nothing is waiting or running (tests; shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    if (this.running || this.closed) return;
    clearTimeout(this.retry);
    this.retry = undefined;
    this.running = this.drain().finally(() => {
      this.running = undefined;
    });
  }

  private async drain(): Promise<void> {
    for (let next = this.waiting; next && !this.closed; next = this.waiting) {
      try {
        await this.submit(next);
        this.metrics.submitted('cosigned');
        if (this.waiting === next) this.waiting = undefined;
      } catch (error) {
        this.metrics.submitted(error instanceof WitnessDisagrees ? error.outcome : 'unreachable');
        this.logger.warn(
          { treeSize: next.treeSize, witness: this.witness?.url, err: (error as Error).message },
          'audit checkpoint not cosigned by the witness; retrying later',
        );
        if (!this.closed) {
          this.retry = setTimeout(() => this.kick(), this.env.AUDIT_WITNESS_RETRY_MS);
          this.retry.unref();
        }
        return;
      }
    }
  }

  private async submit(checkpoint: SignedCheckpoint): Promise<void> {
    const witness = this.configured();
    let oldSize =
      this.heldSize ??
      (await LogRepository.asWriterRole(this.pool, (db) => LogRepository.latestCosignedSize(db, witness.name))) ??
      0;
    for (let round = 0; round < MAX_SIZE_ROUNDS; round += 1) {
      if (oldSize > checkpoint.treeSize) {
        this.logger.error(
          { witness: witness.url, witnessSize: oldSize, treeSize: checkpoint.treeSize },
          'AUDIT WITNESS AHEAD: the witness cosigned a larger tree than this log holds (truncated log, or another log under this origin)',
        );
        throw new WitnessDisagrees(
          'ahead',
          `the witness holds ${oldSize} entries, more than the log's ${checkpoint.treeSize}`,
        );
      }
      const proof =
        oldSize === 0 || oldSize === checkpoint.treeSize
          ? []
          : await LogRepository.asWriterRole(this.pool, (db) =>
              fetchConsistencyProof(oldSize, checkpoint.treeSize, LogRepository.hashReader(db)),
            );
      const response = await fetch(`${witness.url}/add-checkpoint`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body: encodeAddCheckpointRequest({ oldSize, proof, note: checkpoint.note }),
        signal: AbortSignal.timeout(this.env.AUDIT_WITNESS_TIMEOUT_MS),
      });
      const text = await response.text();
      if (response.status === 409 && response.headers.get('content-type')?.startsWith('text/x.tlog.size')) {
        const held = /^(0|[1-9][0-9]*)\n$/.exec(text)?.[1];
        if (held === undefined) throw new Error('the witness answered 409 without a size');
        // Same size, other root: the witness saw another log under this origin at this size.
        if (Number(held) === oldSize)
          throw new WitnessDisagrees('refused', `the witness holds another tree of size ${held}`);
        oldSize = Number(held);
        this.heldSize = oldSize;
        continue;
      }
      if (response.status !== 200) {
        if (response.status === 422 || response.status === 403) {
          this.logger.error(
            { witness: witness.url, status: response.status, treeSize: checkpoint.treeSize, oldSize },
            "AUDIT WITNESS REFUSED the log's signed checkpoint (not a consistent extension, or not the key it trusts)",
          );
          throw new WitnessDisagrees('refused', `the witness answered ${response.status}: ${text.slice(0, 200)}`);
        }
        throw new Error(`the witness answered ${response.status}: ${text.slice(0, 200)}`);
      }
      await this.store(checkpoint, text);
      this.heldSize = checkpoint.treeSize;
      return;
    }
    throw new Error('the witness kept answering with other sizes');
  }

  /** Keeps the answer's line that verifies with the pinned witness key; the others are ignored, as the spec asks. */
  private async store(checkpoint: SignedCheckpoint, answer: string): Promise<void> {
    const witness = this.configured();
    const lines = answer.split('\n').filter((line) => line.startsWith(SIGNATURE_PREFIX));
    for (const line of lines) {
      const verified = verifyCosignature(`${checkpoint.note}${line}\n`, witness.publicKey, witness.name);
      if (!verified.ok) continue;
      await LogRepository.asWriterRole(this.pool, (db) =>
        LogRepository.insertCosignature(db, {
          treeSize: checkpoint.treeSize,
          witnessName: witness.name,
          line: `${line}\n`,
          cosignedAt: new Date(verified.timestamp * 1000),
        }),
      );
      this.logger.info(
        { treeSize: checkpoint.treeSize, witness: witness.name },
        'audit checkpoint cosigned by the witness',
      );
      return;
    }
    throw new Error(`the witness's answer holds no cosignature by ${witness.name} that its pinned key verifies`);
  }

  private configured(): PinnedKey & { url: string } {
    if (!this.witness) throw new Error('no witness is configured');
    return this.witness;
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.running?.catch(() => undefined);
  }
}
