import { randomUUID } from 'node:crypto';

import { create, type DescMessage, type Message, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { JetStreamPublisher } from '@context-gateway/messaging';
import { currentRequestContext, runWithRequestContext } from '@context-gateway/observability';
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

import { atTurnEnd } from '../turn-end.js';
import { AuditGroupCommit } from './audit-group-commit.js';

const event = (eventId: string = randomUUID(), more: MessageInitShape<typeof AuditEventSchema> = {}): AuditEvent =>
  create(AuditEventSchema, {
    eventId,
    occurredAt: timestampFromDate(new Date()),
    action: AuditAction.DATA_QUERY,
    outcome: AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    actorKind: ActorKind.API_KEY,
    ...more,
  });

/**
 * A stream that stores whatever it is given (the messages published, as the publisher got
 * them), or refuses everything once `down` is set. The bytes sent must be the message's
 * (toBinary's): what the audit service decodes is what the group commit validated.
 */
function fakeStream() {
  const published: { subject: string; message: unknown; requestId: string | undefined }[] = [];
  const state = { down: false, throws: 0 };
  const publisher = {
    publishEncoded: (descriptor: { subject: string; message: DescMessage }, message: Message, bytes: Uint8Array) => {
      // A publisher (or encoder) failing before it returns a promise at all, `throws` times.
      if (state.throws > 0 && state.throws--) throw new Error('thrown before any promise');
      if (state.down) return Promise.reject(new Error('no ack'));
      const expected = Buffer.from(toBinary(descriptor.message, message)).toString('hex');
      if (Buffer.from(bytes).toString('hex') !== expected)
        return Promise.reject(new Error('bytes are not the message'));
      // The request whose id the message's headers would carry (the publisher reads it here).
      published.push({ subject: descriptor.subject, message, requestId: currentRequestContext()?.requestId });
      return Promise.resolve({ stream: 'AUDIT', seq: published.length, duplicate: false });
    },
  } as unknown as JetStreamPublisher;
  return { publisher, published, state };
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
    expect([batch, batch.events, ...batch.events].every((part) => Object.isFrozen(part))).toBe(true);
  });

  it('a full batch goes out at once, and an id it carried starts the next batch', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000, 2);
    const id = randomUUID();
    const sent = [group.append(event(id)), group.append(event(id)), group.append(event())];
    const next = group.append(event(id, { resource: 'next' }));
    await Promise.all([...sent, next]);
    expect(published.map((p) => (p.message as Partial<AuditEventBatch>).events?.length ?? 1)).toEqual([2, 1]);
    expect(published[1]?.message).toMatchObject({ eventId: id, resource: 'next' });
  });

  it('sends an event id already waiting once, the first copy, and settles both appends with its outcome', async () => {
    const { publisher, published, state } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    const id = randomUUID();
    const first = group.append(event(id, { resource: 'first' }));
    const again = group.append(event(id, { resource: 'again' }));
    const other = group.append(event());
    await expect(Promise.all([first, again, other])).resolves.toBeDefined();
    const batch = published[0]?.message as AuditEventBatch;
    expect(batch.events.map((e) => [e.eventId, e.resource])).toEqual([
      [id, 'first'],
      [expect.any(String), ''],
    ]);
    expect(events.auditRecordedBatch.validate?.(create(events.auditRecordedBatch.message, batch))).toEqual([]);

    // Not stored: the copy fails as the first does.
    state.down = true;
    const lost = group.append(event(id));
    const copy = group.append(event(id));
    await expect(lost).rejects.toThrow('no ack');
    await expect(copy).rejects.toThrow('no ack');
  });

  it('freezes an appended event, its policy included: what was validated is what goes out', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    const e = event(randomUUID(), { policy: { decidedBy: 'org', matchedRuleIds: ['r1'] } });
    const stored = group.append(e);
    expect(() => (e.orgId = 'not-a-uuid')).toThrow(TypeError);
    expect(() => (e.policy!.decidedBy = 'x'.repeat(10_000))).toThrow(TypeError);
    expect(() => e.policy!.matchedRuleIds.push('r2')).toThrow(TypeError);
    expect(() => (e.occurredAt!.seconds = 10n ** 15n)).toThrow(TypeError);
    await stored;
    expect(published[0]?.message).toMatchObject({ orgId: '', policy: { decidedBy: 'org', matchedRuleIds: ['r1'] } });
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

  it('refuses an event whose numbers the wire cannot carry as they are', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    for (const latencyMs of [-1, 1.5, Number.NaN, 2 ** 32])
      await expect(group.append(event(randomUUID(), { latencyMs }))).rejects.toMatchObject({
        code: 'validation_failed',
      });
    expect(published).toHaveLength(0);
  });

  it.each([
    ['a lone event', 1, 256],
    ['a batch sent at the end of the turn', 3, 256],
    ['a batch sent once full', 2, 2],
  ])('%s whose publishing throws fails exactly its own appends', async (_, count, maxEvents) => {
    const { publisher, published, state } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000, maxEvents);
    state.throws = 1;
    const lost: Promise<void>[] = [];
    for (let i = 0; i < count; i++) lost.push(group.append(event()));
    const next = count === maxEvents ? group.append(event()) : undefined;
    const settled = await Promise.allSettled(lost);
    expect(settled.map((s) => s.status === 'rejected' && (s.reason as Error).message)).toEqual(
      lost.map(() => 'thrown before any promise'),
    );
    // The next batch goes out as if nothing happened.
    await next;
    await group.append(event());
    expect(published).toHaveLength(next ? 2 : 1);
  });

  it('sends a batch in no request context, a lone event in its own', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    await Promise.all([
      runWithRequestContext({ requestId: 'A' }, () => group.append(event())),
      runWithRequestContext({ requestId: 'B' }, () => group.append(event())),
    ]);
    await runWithRequestContext({ requestId: 'C' }, () => group.append(event()));
    const full = new AuditGroupCommit(publisher, 1_000, 2);
    await Promise.all([
      runWithRequestContext({ requestId: 'D' }, () => full.append(event())),
      runWithRequestContext({ requestId: 'E' }, () => full.append(event())),
    ]);
    expect(published.map((p) => [(p.message as Partial<AuditEventBatch>).events?.length ?? 1, p.requestId])).toEqual([
      [2, undefined],
      [1, 'C'],
      [2, undefined],
    ]);
  });

  it('sends a lone event appended after a full batch in its own context, not the one that scheduled the turn', async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000, 2);
    await Promise.all([
      runWithRequestContext({ requestId: 'A' }, () => group.append(event())),
      runWithRequestContext({ requestId: 'B' }, () => group.append(event())),
      runWithRequestContext({ requestId: 'C' }, () => group.append(event())),
    ]);
    expect(published.map((p) => [(p.message as Partial<AuditEventBatch>).events?.length ?? 1, p.requestId])).toEqual([
      [2, undefined],
      [1, 'C'],
    ]);
  });

  it("sends a lone event in its own context when another request's freshness PING opened the turn end", async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    const ping = runWithRequestContext(
      { requestId: 'X' },
      () => new Promise<void>((resolve) => atTurnEnd('ping', resolve)),
    );
    await runWithRequestContext({ requestId: 'C' }, () => group.append(event()));
    await ping;
    expect(published.map((p) => p.requestId)).toEqual(['C']);
  });

  it("queues the turn's audit batch before the turn's freshness PING, whichever was scheduled first", async () => {
    const { publisher, published } = fakeStream();
    const group = new AuditGroupCommit(publisher, 1_000);
    let seen: number | undefined;
    atTurnEnd('ping', () => (seen = published.length));
    const stored = group.append(event());
    await stored;
    // The PING's callback found the batch already handed to the publisher: it leaves in the PING's write.
    expect(seen).toBe(1);
  });

  it('refuses a batch size the audit service would dead-letter', () => {
    const { publisher } = fakeStream();
    expect(() => new AuditGroupCommit(publisher, 1_000, MAX_AUDIT_BATCH_EVENTS + 1)).toThrow(/1 to 256 events/);
  });
});
