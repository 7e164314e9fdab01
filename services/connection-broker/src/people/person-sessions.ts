import { timestampDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { assertRecentPasskeyUse, SERVICE_ENV } from '@context-gateway/service-kit';
import { Global, Inject, Injectable, Module } from '@nestjs/common';

import type { Env } from '../env.js';

/**
 * The person a call acts for, proven rather than named: the broker's person calls carry the
 * person's browser session token and the broker asks identity (identity.v1.resolve_session)
 * whose it is. A caller that can publish these subjects but holds no live session of the
 * person cannot act for them (docs/trust-boundaries.md).
 */
@Injectable()
export class PersonSessions {
  readonly #stepUpMaxAgeMs: number;

  constructor(
    private readonly rpc: RpcClient,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) env: Pick<Env, 'PERSON_STEP_UP_MAX_AGE_MS'>,
  ) {
    this.#stepUpMaxAgeMs = env.PERSON_STEP_UP_MAX_AGE_MS;
  }

  /** The session's person; `unauthenticated` when the token is unknown, expired or signed out. */
  async userId(sessionToken: string): Promise<string> {
    return (await this.resolve(sessionToken)).userId;
  }

  /**
   * As `userId`, for what changes who may read a person's data (allowing a grant, revoking
   * one, deleting a connection): the session must have been opened by a passkey use within
   * PERSON_STEP_UP_MAX_AGE_MS, so a stolen or forgotten session cookie alone cannot do it.
   * `reauthentication_required` otherwise: the person confirms with their passkey
   * (/v1/auth/signin?prompt=login) and tries again.
   */
  async recentUserId(sessionToken: string): Promise<string> {
    const { userId, authenticatedAt } = await this.resolve(sessionToken);
    assertRecentPasskeyUse(authenticatedAt, this.#stepUpMaxAgeMs, this.clock.now());
    return userId;
  }

  private async resolve(sessionToken: string): Promise<{ userId: string; authenticatedAt?: Date }> {
    if (!sessionToken) throw new AppError('unauthenticated', 'This call needs the signed-in person’s session');
    const session = await this.rpc.request(rpc.identity.resolveSession, { sessionToken });
    if (!session.user?.id) throw new AppError('unauthenticated', 'The session has no person');
    return {
      userId: session.user.id,
      authenticatedAt: session.authenticatedAt ? timestampDate(session.authenticatedAt) : undefined,
    };
  }

  /**
   * As `userId`, for calls where a person is optional: no token, or one that no longer
   * resolves (signed out since), is no person. identity being unreachable is still an error.
   */
  async optionalUserId(sessionToken: string): Promise<string | undefined> {
    if (!sessionToken) return undefined;
    try {
      return await this.userId(sessionToken);
    } catch (error) {
      if (AppError.from(error).code === 'unauthenticated') return undefined;
      throw error;
    }
  }
}

/** Every context that acts for a person resolves them here. */
@Global()
@Module({ providers: [PersonSessions], exports: [PersonSessions] })
export class PeopleModule {}
