import { randomUUID } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import type { JetStreamPublisher } from '@context-gateway/messaging';
import { AUDIT_BATCH_HEADER, type AuditEvent, events, MAX_AUDIT_BATCH_EVENTS } from '@context-gateway/proto';

interface Waiting {
  event: AuditEvent;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for audit events. Every event appended in the same turn of the event loop
 * (the requests whose callbacks ran in one poll phase) goes to the AUDIT stream in one
 * message, `AuditEventBatch`, and waits for one acknowledgement with the others: one ack
 * wait per batch instead of per request. A lone event goes out as a plain AuditEvent, as
 * before. Nothing changes for a caller: `append` resolves only once the stream stored its
 * event; when a batch is not stored, exactly the events in it reject (their requests answer
 * `audit_unavailable`); an event that fails validation is refused on its own at once and
 * never spoils a batch. Batches flush at MAX_AUDIT_BATCH_EVENTS without waiting for the turn
 * to end, and several may be in flight at once.
 *
 * Each event is validated once, here, as it is appended — with everything else the batch's
 * validation checks (an event id already in the batch is refused on its own too, a batch id
 * is a fresh UUID, at most MAX_AUDIT_BATCH_EVENTS events) — so the publisher does not check
 * the whole batch again: the audit service would dead-letter a batch that failed it.
 */
export class AuditGroupCommit {
  #waiting: Waiting[] = [];
  /** The event ids in #waiting: a batch carries each at most once (validateAuditEventBatch). */
  #ids = new Set<string>();
  #scheduled = false;

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly timeoutMs: number,
    private readonly maxEvents: number = MAX_AUDIT_BATCH_EVENTS,
  ) {
    // A larger batch would be stored and then dead-lettered by the audit service, never appended.
    if (!(maxEvents >= 1 && maxEvents <= MAX_AUDIT_BATCH_EVENTS))
      throw new AppError('internal', `an audit batch holds 1 to ${MAX_AUDIT_BATCH_EVENTS} events, not ${maxEvents}`);
  }

  append(event: AuditEvent): Promise<void> {
    const problems = events.auditRecorded.validate?.(event) ?? [];
    if (this.#ids.has(event.eventId))
      problems.push({ path: 'eventId', message: 'appears twice in the batch (already appended, not yet stored)' });
    if (problems.length > 0) {
      return Promise.reject(new AppError('validation_failed', 'the audit event failed validation', problems));
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ event, resolve, reject });
      this.#ids.add(event.eventId);
      if (this.#waiting.length >= this.maxEvents) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#flush();
        });
      }
    });
  }

  #flush(): void {
    // append() flushes at maxEvents: what waits is always one batch, never more.
    const batch = this.#waiting;
    this.#waiting = [];
    this.#ids = new Set();
    const [only] = batch;
    if (!only) return;
    // Validated on append (above): `validated` spares the publisher checking every event again.
    const stored =
      batch.length === 1
        ? this.publisher.publish(events.auditRecorded, only.event, { timeoutMs: this.timeoutMs, validated: true })
        : this.publisher.publish(
            events.auditRecordedBatch,
            { batchId: randomUUID(), events: batch.map((w) => w.event) },
            { timeoutMs: this.timeoutMs, headers: { [AUDIT_BATCH_HEADER]: '1' }, validated: true },
          );
    stored.then(
      () => {
        for (const w of batch) w.resolve();
      },
      (error: unknown) => {
        for (const w of batch) w.reject(error);
      },
    );
  }
}
