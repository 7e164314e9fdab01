import { Injectable } from '@nestjs/common';

/**
 * How far this process has seen the CONTROL stream applied, in memory. policy's consumer
 * has at most one message in flight across all replicas and acks only after committing, so
 * once this process acked message S, every message up to S has been applied (by whichever
 * replica held it). Messages that change nothing (policy's own PolicyChanged, other facts)
 * are acked without a database round trip; the durable cursor row catches up lazily and is
 * only ever behind — a snapshot reports the larger of the two.
 */
@Injectable()
export class ControlProgress {
  private seq = 0;

  get appliedThrough(): number {
    return this.seq;
  }

  advance(seq: number): void {
    if (seq > this.seq) this.seq = seq;
  }
}
