import { Inject, Injectable } from '@nestjs/common';
import { AppError } from '@context-gateway/errors';
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

  async revoke(input: { connectionId: string; applicationId: string; userId?: string; orgId?: string }): Promise<string> {
    const where = { connectionId: input.connectionId, applicationId: input.applicationId, ...(input.userId ? { userId: input.userId } : {}), ...(input.orgId ? { orgId: input.orgId } : {}) };
    const result = await this.db.$transaction(async (tx) => {
      const grant = await this.grants.revoke(tx, where, new Date());
      if (!grant) return null;
      const integration = await this.grants.integrationOf(tx, grant);
      return { grant, integration, eventId: await this.relay.record(tx, grant, integration) };
    });
    if (!result) throw new AppError('connection_not_found');
    await this.followers.revoked(result.grant, result.integration, result.eventId);
    return result.grant.id;
  }
}
