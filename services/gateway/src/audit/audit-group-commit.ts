import { AsyncResource } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import type { JetStreamPublisher } from '@context-gateway/messaging';
import { runDetached } from '@context-gateway/observability';
import {
  AUDIT_BATCH_HEADER,
  type AuditEvent,
  auditEventBatchOf,
  events,
  MAX_AUDIT_BATCH_EVENTS,
  type Validated,
  validateEvent,
} from '@context-gateway/proto';

import { atTurnEnd } from '../turn-end.js';
import { encodeAuditBatch, encodeAuditEvent } from './audit-event-bytes.js';

interface Waiting {
  event: Validated<AuditEvent>;
  /** Its protobuf bytes (encodeAuditEvent): a batch is these spliced, never encoded again. */
  bytes: Buffer;
  /** What append returned for it, and for any later copy of its id in the same batch. */
  stored: Promise<void>;
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
 * Each event is validated once, here, as it is appended (validateEvent, which also freezes
 * it: an appended event cannot be changed any more, and an assignment to it throws); the
 * batch adds only its own checks (auditEventBatchOf), and the publisher sends both without
 * checking them again (publishEncoded). Each is encoded once, too, as it is appended
 * (encodeAuditEvent, by hand): a batch is its events' bytes spliced after the batch id. An
 * event whose id is already waiting in the batch is not sent twice — the audit service would
 * dead-letter a batch carrying an id twice — and shares the first copy's outcome, as
 * JetStream's de-duplication by message id does: the first copy is the one stored.
 */
export class AuditGroupCommit {
  /** The next batch by event id, in append order: a batch carries each id once. */
  #waiting = new Map<string, Waiting>();
  /**
   * The turn-end flush (atTurnEnd, before the turn's freshness PING, so the batch leaves in the
   * PING's socket write), bound to the context of the request that scheduled it. A full flush
   * from append cancels it (the callback then finds another token and does nothing), and the
   * next event schedules its own, so a lone event never goes out in another request's context.
   */
  #turnEnd: object | undefined;

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly timeoutMs: number,
    private readonly maxEvents: number = MAX_AUDIT_BATCH_EVENTS,
  ) {
    // A larger batch would be stored and then dead-lettered by the audit service, never appended.
    if (!(maxEvents >= 1 && maxEvents <= MAX_AUDIT_BATCH_EVENTS))
      throw new AppError('internal', `an audit batch holds 1 to ${MAX_AUDIT_BATCH_EVENTS} events, not ${maxEvents}`);
  }

  /** Resolves once the stream stored the event (or the first copy of its id still waiting). */
  append(event: AuditEvent): Promise<void> {
    const checked = validateEvent(events.auditRecorded, event);
    if (!checked.ok) {
      return Promise.reject(new AppError('validation_failed', 'the audit event failed validation', checked.problems));
    }
    const first = this.#waiting.get(event.eventId);
    if (first) return first.stored;
    let settle!: Pick<Waiting, 'resolve' | 'reject'>;
    const stored = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.#waiting.set(event.eventId, {
      event: checked.message,
      bytes: encodeAuditEvent(checked.message),
      stored,
      ...settle,
    });
    if (this.#waiting.size >= this.maxEvents) {
      this.#turnEnd = undefined;
      this.#flush();
    } else if (this.#turnEnd === undefined) {
      const token = {};
      this.#turnEnd = token;
      // The request's async context, kept for the flush (one object; AsyncResource.bind would
      // add a bound function on top).
      const request = new AsyncResource('AuditTurnEnd');
      atTurnEnd('publish', () => {
        if (this.#turnEnd !== token) return;
        this.#turnEnd = undefined;
        request.runInAsyncScope(this.#flush, this);
      });
    }
    return stored;
  }

  #flush(): void {
    // append() flushes at maxEvents: what waits is always one batch, never more.
    const batch = [...this.#waiting.values()];
    this.#waiting = new Map();
    const [only] = batch;
    if (!only) return;
    // A lone event goes out in its request's context (its cg-request-id and traceparent). A
    // batch is no one request's: it would carry whichever request appended first (or filled
    // it), so it goes out detached, with neither.
    const stored = batch.length === 1 ? this.#publishOne(only) : runDetached(() => this.#publishBatch(batch));
    stored.then(
      () => {
        for (const w of batch) w.resolve();
      },
      (error: unknown) => {
        for (const w of batch) w.reject(error);
      },
    );
  }

  // Both async: a synchronous throw (the encoder's, the publisher's) rejects exactly this
  // batch's events, rather than escaping from the turn end (atTurnEnd) or into the append that filled it.
  async #publishOne({ event, bytes }: Waiting): Promise<unknown> {
    return this.publisher.publishEncoded(events.auditRecorded, event, bytes, { timeoutMs: this.timeoutMs });
  }

  async #publishBatch(batch: Waiting[]): Promise<unknown> {
    const checked = auditEventBatchOf(
      randomUUID(),
      batch.map((w) => w.event),
    );
    // Cannot fail (a fresh UUID, at most maxEvents, each id once): refused whole if it ever did.
    if (!checked.ok) throw new AppError('validation_failed', 'the audit batch failed validation', checked.problems);
    const bytes = encodeAuditBatch(
      checked.message.batchId,
      batch.map((w) => w.bytes),
    );
    return this.publisher.publishEncoded(events.auditRecordedBatch, checked.message, bytes, {
      timeoutMs: this.timeoutMs,
      headers: { [AUDIT_BATCH_HEADER]: '1' },
    });
  }
}
