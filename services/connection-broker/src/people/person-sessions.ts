import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { Global, Injectable, Module } from '@nestjs/common';

/**
 * The person a call acts for, proven rather than named: the broker's person calls carry the
 * person's browser session token and the broker asks identity (identity.v1.resolve_session)
 * whose it is. A caller that can publish these subjects but holds no live session of the
 * person cannot act for them (docs/trust-boundaries.md).
 */
@Injectable()
export class PersonSessions {
  constructor(private readonly rpc: RpcClient) {}

  /** The session's person; `unauthenticated` when the token is unknown, expired or signed out. */
  async userId(sessionToken: string): Promise<string> {
    if (!sessionToken) throw new AppError('unauthenticated', 'This call needs the signed-in person’s session');
    const session = await this.rpc.request(rpc.identity.resolveSession, { sessionToken });
    if (!session.user?.id) throw new AppError('unauthenticated', 'The session has no person');
    return session.user.id;
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
