import { AppError } from '@context-gateway/errors';
import { Inject, Injectable } from '@nestjs/common';

import { BROKER_DB, type BrokerDb } from '../database/database.module.js';
import { GrantEventsRelay } from './grant-events.relay.js';
import { GrantFollowers } from './grant-followers.service.js';
import { GrantsRepository } from './grants.repository.js';

/** Revocation of one app's grant (by the user, or by the app giving it up). */
@Injectable()
export class GrantsService {
  constructor(
    @Inject(BROKER_DB) private readonly db: BrokerDb,
    private readonly grants: GrantsRepository,
    private readonly followers: GrantFollowers,
    private readonly relay: GrantEventsRelay,
  ) {}

  /**
   * The shard commits the revocation before we do (and before the caller gets an answer):
   * the revoked app's very next query fails there. Then the grant row and its event.
   */
  async revoke(input: {
    connectionId: string;
    applicationId: string;
    userId?: string;
    orgId?: string;
  }): Promise<string> {
    const where = {
      connectionId: input.connectionId,
      applicationId: input.applicationId,
      ...(input.userId ? { userId: input.userId } : {}),
      ...(input.orgId ? { orgId: input.orgId } : {}),
    };
    const active = await this.grants.findActiveMatching(where);
    if (!active) throw new AppError('connection_not_found');
    await this.followers.revokeAtShard(active);
    const result = await this.db.$transaction(async (tx) => {
      const grant = await this.grants.revoke(tx, where, new Date());
      if (!grant) return null;
      const integration = await this.grants.integrationOf(tx, grant);
      return { grant, eventId: await this.relay.record(tx, grant, integration) };
    });
    // null: a concurrent revocation of the same grant committed first; the outcome is the same.
    if (result) await this.followers.revoked([result.eventId]);
    return active.id;
  }
}
