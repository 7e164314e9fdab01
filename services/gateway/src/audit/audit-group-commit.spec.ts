import { randomUUID } from 'node:crypto';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { JetStreamPublisher } from '@context-gateway/messaging';
import {
  ActorKind,
  AuditAction,
  type AuditEvent,
  type AuditEventBatch,
  AuditEventSchema,
  AuditOutcome,
  AuditPhase,
  events,
  MAX_AUDIT_BATCH_EVENTS,
} from '@context-gateway/proto';

import { AuditGroupCommit } from './audit-group-commit.js';

const event = (eventId: string = randomUUID()): AuditEvent =>
  create(AuditEventSchema, {
    eventId,
    occurredAt: timestampFromDate(new Date()),
    action: AuditAction.DATA_QUERY,
    outcome: AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    actorKind: ActorKind.API_KEY,
  });

/** A stream that stores whatever it is given: the messages published, as the publisher got them. */
function fakeStream() {
  const published: { subject: string; message: unknown }[] = [];
  const publisher = {
    publish: (descriptor: { subject: string }, message: unknown) => {
      published.push({ subject: descriptor.subject, message });
      return Promise.resolve({ stream: 'AUDIT', seq: published.length, duplicate: false });
    },
  } as unknown as JetStreamPublisher;
  return { publisher, published };
}

describe('AuditGroupCommit', () => {
  it('sends the events of one turn in one batch that passes the batch validation', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    await Promise.all([group.append(event()), group.append(event()), group.append(event())]);
    expect(published).toHaveLength(1);
    const batch = published[0]?.message as AuditEventBatch;
    expect(batch.events).toHaveLength(3);
    // The publisher no longer checks the batch: whatever it is sent must pass the consumer's check.
    expect(events.auditRecordedBatch.validate?.(create(events.auditRecordedBatch.message, batch))).toEqual([]);
  });

  it('refuses an event id already waiting in the batch on its own, and stores the rest', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    const id = randomUUID();
    const first = group.append(event(id));
    const again = group.append(event(id));
    const other = group.append(event());
    await expect(again).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(Promise.all([first, other])).resolves.toBeDefined();
    const batch = published[0]?.message as AuditEventBatch;
    expect(batch.events.map((e) => e.eventId)).toEqual([id, expect.any(String)]);
    expect(events.auditRecordedBatch.validate?.(create(events.auditRecordedBatch.message, batch))).toEqual([]);
  });

  it('takes the same event id again once its batch went out', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    const id = randomUUID();
    await group.append(event(id));
    await group.append(event(id));
    expect(published).toHaveLength(2);
  });

  it('refuses an invalid event on its own', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    const bad = group.append(event('not-a-uuid'));
    const good = group.append(event());
    await expect(bad).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(good).resolves.toBeUndefined();
    expect(published).toHaveLength(1);
  });

  it('refuses a batch size the audit service would dead-letter', () => {
    const { publisher } = fakeStream();
    expect(() => new AuditGroupCommit(publisher, 1_000, MAX_AUDIT_BATCH_EVENTS + 1)).toThrow(/1 to 256 events/);
  });
});
