import { type MessageInitShape } from '@bufbuild/protobuf';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import type { PasskeyProofSchema } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import type { Tx } from '../database/database.module.js';
import { WebhookOutbox } from '../webhooks/webhook-outbox.js';
import { GrantEventsRelay } from './grant-events.relay.js';
import { GrantFollowers } from './grant-followers.service.js';
import { type Grant, type GrantMatch, GrantsRepository } from './grants.repository.js';

/** A grant change written in a caller's transaction, with the id of the event that announces it. */
export interface GrantChange {
  grant: Grant;
  eventId: string;
}

/**
 * The grant lifecycle, the only door into this context: grant and revoke inside the
 * caller's transaction (each change writes its control.v1.grant_changed event in the same
 * commit), then — only after that commit — tell the Personal Server and flush the events.
 * Keeping "in the transaction" and "after the commit" as separate calls is what lets the
 * connect and connections contexts put their own rows in the same commit.
 */
@Injectable()
export class GrantsService {
  constructor(
    private readonly grants: GrantsRepository,
    private readonly followers: GrantFollowers,
    private readonly relay: GrantEventsRelay,
    private readonly clock: Clock,
    private readonly webhooks: WebhookOutbox,
  ) {}

  /** The app's active grant on a connection, if any: what decides whether an app may see it. */
  findActive(applicationId: string, connectionId: string): Promise<Grant | null> {
    return this.grants.findActiveMatching({ applicationId, connectionId });
  }

  /** In the caller's transaction: the app's grant (new, or re-activated with these scopes) and its event. */
  async grant(
    tx: Tx,
    data: { orgId: string; applicationId: string; userId: string; connectionId: string; scopes: string[] },
    integration: string,
  ): Promise<GrantChange> {
    const grant = await this.grants.upsert(tx, data);
    return { grant, eventId: await this.relay.record(tx, grant, integration) };
  }

  /**
   * After the commit of `grant`: the Personal Server learns of it (with the person's signed
   * consent, which it verifies), then the event is published.
   */
  granted(
    change: GrantChange,
    integration: string,
    consent: MessageInitShape<typeof PasskeyProofSchema>,
  ): Promise<void> {
    return this.followers.granted(change.grant, integration, change.eventId, consent);
  }

  /**
   * In the caller's transaction: every active grant on a (deleted) connection revoked, each
   * app told `grant.revoked` then `connection.deleted`. Returns the grant events' ids.
   */
  async revokeAllOnConnection(tx: Tx, connectionId: string, integration: string): Promise<string[]> {
    const eventIds: string[] = [];
    for (const active of await this.grants.activeOnConnection(tx, connectionId)) {
      const grant = await this.grants.revoke(
        tx,
        { applicationId: active.applicationId, connectionId },
        this.clock.date(),
      );
      if (!grant) continue;
      eventIds.push(await this.relay.record(tx, grant, integration));
      await this.webhooks.enqueue(tx, {
        applicationId: grant.applicationId,
        orgId: grant.orgId,
        connectionId,
        type: 'connection.deleted',
        data: { integration },
      });
    }
    return eventIds;
  }

  /**
   * In the caller's transaction: a connection just became `needs_reauth`; each app holding an
   * active grant on it hears `connection.needs_reauth`.
   */
  async tellNeedsReauth(tx: Tx, connectionId: string, integration: string): Promise<void> {
    for (const grant of await this.grants.activeOnConnection(tx, connectionId))
      await this.webhooks.enqueue(tx, {
        applicationId: grant.applicationId,
        orgId: grant.orgId,
        connectionId,
        type: 'connection.needs_reauth',
        data: { integration },
      });
  }

  /** After the commit of revocations: their events published together. */
  revoked(eventIds: string[]): Promise<void> {
    return this.followers.revoked(eventIds);
  }

  /**
   * Before a connection's deletion commits here: each active grant on it revoked at the owning
   * shard, so every app's very next query fails there. False when the shard could not confirm
   * them all: the deletion goes on regardless (the person asked for it, and a shard that cannot
   * be reached answers no query either); the shard catches up from control.v1.grant_changed
   * and from the deletion outbox, whose shredding drops the grants with the records.
   */
  async revokeAllAtShard(connectionId: string): Promise<boolean> {
    const active = await this.grants.transaction((tx) => this.grants.activeOnConnection(tx, connectionId));
    let confirmed = true;
    for (const grant of active) confirmed = (await this.followers.tryRevokeAtShard(grant)) && confirmed;
    return confirmed;
  }

  /**
   * One app's grant revoked (by the user, or by the app giving it up). The shard commits the
   * revocation before we do (and before the caller gets an answer): the revoked app's very
   * next query fails there. Then the grant row and its event.
   */
  async revoke(input: GrantMatch): Promise<string> {
    const where: GrantMatch = {
      connectionId: input.connectionId,
      applicationId: input.applicationId,
      ...(input.userId ? { userId: input.userId } : {}),
      ...(input.orgId ? { orgId: input.orgId } : {}),
    };
    const active = await this.grants.findActiveMatching(where);
    if (!active) throw new AppError('connection_not_found');
    await this.followers.revokeAtShard(active);
    const result = await this.grants.transaction(async (tx) => {
      const grant = await this.grants.revoke(tx, where, this.clock.date());
      if (!grant) return null;
      const integration = await this.grants.integrationOf(tx, grant);
      return { grant, eventId: await this.relay.record(tx, grant, integration) };
    });
    // null: a concurrent revocation of the same grant committed first; the outcome is the same.
    if (result) await this.followers.revoked([result.eventId]);
    return active.id;
  }
}
