import { type MessageInitShape } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { GrantState, type PasskeyProofSchema, personalServerRpc } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { GrantEventsRelay } from './grant-events.relay.js';
import type { Grant } from './grants.repository.js';

/**
 * What must follow a committed grant change, in this order: the owning Personal Server
 * shard (provisioned on first use, then told about the grant: it re-checks grants itself on
 * every query), and the CONTROL stream (`control.v1.grant_changed`, which policy and the
 * data plane's caches follow). Called only after the database commit, never inside it.
 */
@Injectable()
export class GrantFollowers {
  constructor(
    private readonly rpc: RpcClient,
    private readonly relay: GrantEventsRelay,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * A grant was created or its scopes changed: provision the Personal Server, register the
   * grant at its shard with the person's signed consent, publish. A grant the shard did not
   * register is not honoured there: the app's queries fail until the person consents again
   * (a registration needs the person's signature, which no event carries). For a first
   * consent that is all (the grant is already committed and the person is waiting). A
   * re-consent (revision > 1) may have fewer scopes than the grant the shard still holds,
   * which it would go on answering: that earlier grant is then revoked at the shard before
   * anyone hears success (fail closed), and if the shard cannot confirm even that, the call
   * fails with service_unavailable.
   */
  async granted(
    grant: Grant,
    integration: string,
    eventId: string,
    consent: MessageInitShape<typeof PasskeyProofSchema>,
  ): Promise<void> {
    try {
      await this.rpc.request(personalServerRpc.provision, { userId: grant.userId });
      await this.rpc.request(personalServerRpc.registerGrant, {
        grant: {
          grantId: grant.id,
          orgId: grant.orgId,
          applicationId: grant.applicationId,
          userId: grant.userId,
          connectionId: grant.connectionId,
          integration,
          scopes: grant.scopes,
          state: GrantState.ACTIVE,
        },
        consent,
      });
    } catch (error) {
      this.warn('register grant', grant, error);
      if (grant.revision > 1 && !(await this.revokeEarlierAtShard(grant))) {
        await this.relay.flush([eventId]);
        throw new AppError(
          'service_unavailable',
          'The Personal Server could not confirm the new consent; allow the connection again later',
        );
      }
    }
    await this.relay.flush([eventId]);
  }

  /**
   * Before a revocation is committed here: the owning shard commits it first, so the very
   * next query of that app fails. A shard that never heard of the grant (not_found) has
   * nothing to revoke; any other failure stops the revocation (the caller may retry).
   */
  async revokeAtShard(grant: Grant): Promise<void> {
    try {
      await this.rpc.request(personalServerRpc.revokeGrant, { grantId: grant.id, userId: grant.userId });
    } catch (error) {
      if (error instanceof AppError && error.code === 'not_found') return;
      throw error;
    }
  }

  /** Grants were revoked (and committed): publish their events, together. */
  async revoked(eventIds: string[]): Promise<void> {
    await this.relay.flush(eventIds);
  }

  /** `revokeAtShard` for a connection's deletion: a failure is logged and answered false, not thrown. */
  async tryRevokeAtShard(grant: Grant): Promise<boolean> {
    try {
      await this.revokeAtShard(grant);
      return true;
    } catch (error) {
      this.logger.warn(
        { grantId: grant.id, connectionId: grant.connectionId, errorCode: AppError.from(error).code },
        'personal server did not confirm revoking a grant of a connection being deleted',
      );
      return false;
    }
  }

  /**
   * The shard's grant of this app on this connection, whatever its id or terms, revoked; true
   * when the shard confirmed it (or holds none). A registration that did arrive after all
   * leaves the new grant revoked or in force, never the earlier one.
   */
  private async revokeEarlierAtShard(grant: Grant): Promise<boolean> {
    try {
      await this.rpc.request(personalServerRpc.revokeGrant, {
        connectionId: grant.connectionId,
        applicationId: grant.applicationId,
        userId: grant.userId,
      });
      return true;
    } catch (error) {
      if (error instanceof AppError && error.code === 'not_found') return true;
      this.warn('revoke the grant a re-consent replaces', grant, error);
      return false;
    }
  }

  private warn(what: string, grant: Grant, error: unknown): void {
    this.logger.warn(
      {
        grantId: grant.id,
        connectionId: grant.connectionId,
        code: error instanceof AppError ? error.code : 'internal',
      },
      `personal server did not confirm: ${what}`,
    );
  }
}
