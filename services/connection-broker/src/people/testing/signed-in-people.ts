import { randomBytes } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { answerRpc } from '@context-gateway/messaging/testing';
import { rpc } from '@context-gateway/proto';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * identity's side of identity.v1.resolve_session for the broker's integration tests: people
 * signed in with a session token each, answered on the wire as identity answers (a person, or
 * `unauthenticated` for a token it does not know or one signed out). The broker under test
 * resolves the tokens its person calls carry over real NATS; identity itself is tested in
 * services/identity, and the whole path in test-e2e.
 */
export class SignedInPeople {
  readonly #sessions = new Map<string, string>();
  readonly #byUser = new Map<string, string>();
  /** When each session's passkey was used; now, unless a test says otherwise. */
  readonly #authenticatedAt = new Map<string, Date>();

  private constructor(private readonly clock: Clock) {}

  /** `clock`: the broker's, so that "a passkey use just now" is now for the broker under test. */
  static answerOn(nc: NatsConnection, clock: Clock = systemClock): SignedInPeople {
    const people = new SignedInPeople(clock);
    answerRpc(nc, rpc.identity.resolveSession, ({ sessionToken }) => {
      const userId = people.#sessions.get(sessionToken);
      if (!userId) throw new AppError('unauthenticated', 'Unknown or expired session');
      return {
        user: { id: userId, displayName: 'Test person' },
        authenticatedAt: timestampFromDate(people.#authenticatedAt.get(sessionToken) ?? clock.date()),
      };
    });
    return people;
  }

  /** The session token of this person (one per person, opened on first use). */
  sessionOf(userId: string): string {
    let token = this.#byUser.get(userId);
    if (!token) {
      token = `cg_ss_${randomBytes(32).toString('base64url')}`;
      this.#sessions.set(token, userId);
      this.#byUser.set(userId, token);
    }
    return token;
  }

  /** The person's session was opened by a passkey use `ageMs` ago (a step-up is then due). */
  passkeyUsedAgo(userId: string, ageMs: number): void {
    this.#authenticatedAt.set(this.sessionOf(userId), new Date(this.clock.now() - ageMs));
  }

  /** The person signs out: their token stops resolving. */
  signOut(userId: string): void {
    const token = this.#byUser.get(userId);
    if (token) this.#sessions.delete(token);
    this.#byUser.delete(userId);
  }
}
