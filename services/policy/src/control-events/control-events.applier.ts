import { type ApplicationChanged, type GrantChanged, GrantStatus } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import { RulesRepository } from '../rules/rules.repository.js';
import { RulesService } from '../rules/rules.service.js';

/**
 * Applies identity's and connection-broker's facts to the derived defaults. Each event is
 * applied in one transaction together with the org's revision bump and the CONTROL cursor,
 * so "cursor >= S" means "the effects of event S are committed". Replays and out-of-order
 * deliveries are harmless: an event older than what is stored (per application / grant
 * revision) changes nothing but the cursor.
 */
@Injectable()
export class ControlEventsApplier {
  constructor(
    private readonly repo: RulesRepository,
    private readonly rules: RulesService,
  ) {}

  /** Returns the org revision when the event changed something, else null. */
  async applicationChanged(event: ApplicationChanged, streamSeq: number): Promise<bigint | null> {
    const bumped = await this.repo.transaction(async (tx) => {
      const applied = await this.repo.upsertApplicationIfNewer(tx, {
        id: event.applicationId,
        orgId: event.orgId,
        integrations: [...new Set(event.integrations)],
        scopes: [...new Set(event.scopes)],
        active: event.active,
        revision: event.revision,
      });
      await this.repo.advanceControlSeq(tx, streamSeq);
      return applied ? this.rules.bump(tx, event.orgId, 'application_changed') : null;
    });
    return this.announced(bumped);
  }

  async grantChanged(event: GrantChanged, streamSeq: number): Promise<bigint | null> {
    const bumped = await this.repo.transaction(async (tx) => {
      // Ordered with the user's own rule changes (see RulesRepository.lockUser).
      await this.repo.lockUser(tx, event.userId);
      const applied = await this.repo.upsertGrantIfNewer(tx, {
        id: event.grantId,
        orgId: event.orgId,
        applicationId: event.applicationId,
        userId: event.userId,
        scopes: [...new Set(event.scopes)],
        // Anything but an explicitly active grant allows nothing (secure default).
        active: event.status === GrantStatus.ACTIVE,
        revision: event.revision,
      });
      await this.repo.advanceControlSeq(tx, streamSeq);
      return applied ? this.rules.bump(tx, event.orgId, 'grant_changed') : null;
    });
    return this.announced(bumped);
  }

  /** Persists the cursor past messages that changed nothing (called lazily, see ControlProgress). */
  async persistCursor(streamSeq: number): Promise<void> {
    await this.repo.transaction((tx) => this.repo.advanceControlSeq(tx, streamSeq));
  }

  private announced(bumped: { revision: bigint; eventId: string } | null): bigint | null {
    if (bumped === null) return null;
    // Not awaited: gateways do not depend on it for these (they wait for the cursor, see
    // docs/policy.md), and awaiting the stream ack here would hold the consumer's single
    // in-flight slot — every later event, revocations included, would wait for it. The event
    // was committed with the change: the outbox relay publishes it if this attempt fails.
    void this.rules.announce([bumped.eventId]).catch(() => undefined);
    return bumped.revision;
  }
}
