import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { StreamFollower } from '@context-gateway/messaging';
import { events, streams, TokenRevocationKind } from '@context-gateway/proto';
import { DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

import type { ControlHead } from '../policy/control-head.js';
import { Deadlines } from './deadlines.js';

/** Identity's access tokens live at most an hour (OAUTH_ACCESS_TOKEN_TTL_SECONDS); a revocation older than this ends nothing. */
const REVOCATION_HORIZON_MS = 2 * 60 * 60_000;

/** What a token is checked against: its grant, its application, the person it acts for. */
export interface TokenSubjects {
  grantId: string | undefined;
  applicationId: string;
  userId: string | undefined;
  /** `iat`, in seconds. */
  issuedAt: number;
}

const subject = events.tokensRevoked.subject;
const keyOf = (kind: TokenRevocationKind, id: string) => `${kind}:${id}`;
/** The head did not answer in time (NATS buffers requests while it reconnects). */
const tooLate = () => new AppError('service_unavailable', 'Token revocations could not be checked in time');
const uncheckable = (error: unknown) =>
  new AppError('service_unavailable', 'Token revocations could not be checked', [], { cause: error });

/**
 * The gateway's copy of identity's token revocations (`control.v1.tokens_revoked` on the
 * CONTROL stream): for each grant, application and person, the latest moment before which
 * its tokens are void, and which API keys and applications were revoked when. The same
 * consistency rule as the policy cache (docs/policy.md): before a token or a remembered key
 * is accepted, learn the CONTROL stream's last sequence *now* (ControlHead, one
 * question per request shared with the policy check) and wait until this process has read
 * up to it, so a revocation that returned to its caller is known to the very next request,
 * on every gateway. It reads the whole stream (other subjects are skipped) so that its
 * position is comparable with that sequence.
 *
 * At start it replays the last REVOCATION_HORIZON_MS of revocations (a restarted gateway
 * must still refuse a token revoked a minute ago); older ones concern only expired tokens.
 */
export class TokenRevocations {
  /** kind:id → the latest revocation's time (identity's clock) and stream sequence. */
  private readonly revoked = new Map<string, { at: number; seq: number }>();
  private readonly follower: StreamFollower;
  private readonly deadlines = new Deadlines();

  constructor(
    private readonly nc: NatsConnection,
    private readonly head: ControlHead,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.follower = new StreamFollower(nc, {
      stream: streams.control.name,
      name: 'token revocation reader',
      logger,
      onMessage: (m) => {
        if (m.subject === subject) this.apply(m.data, m.seq);
      },
      lateError: () => new AppError('service_unavailable', 'Token revocations could not be read up to date in time'),
    });
  }

  async start(): Promise<void> {
    const replayFrom = this.now() - REVOCATION_HORIZON_MS;
    const { state } = await (await jetstreamManager(this.nc)).streams.info(streams.control.name);
    // Nothing to replay when the newest message is older than the horizon: it is read as "done".
    const lastAt = Date.parse(state.last_ts);
    await this.follower.start(
      { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(replayFrom).toISOString() },
      state.last_seq === 0 || !(lastAt >= replayFrom) ? state.last_seq : 0,
    );
  }

  stop(): Promise<void> {
    return this.follower.stop();
  }

  /**
   * Throws `unauthenticated` when the token was issued at or before a revocation of its
   * grant, application or person; `service_unavailable` when the revocations cannot be
   * read up to date within `timeoutMs` (fail closed).
   */
  async check(token: TokenSubjects, timeoutMs: number): Promise<void> {
    await this.upToDate(timeoutMs);
    const issuedAtMs = token.issuedAt * 1_000;
    const candidates = [
      token.grantId === undefined ? undefined : keyOf(TokenRevocationKind.GRANT, token.grantId),
      keyOf(TokenRevocationKind.APPLICATION, token.applicationId),
      token.userId === undefined ? undefined : keyOf(TokenRevocationKind.USER, token.userId),
    ];
    for (const key of candidates) {
      const at = key === undefined ? undefined : this.revoked.get(key)?.at;
      // iat has one-second precision: a token of the revocation's own second is refused too.
      if (at !== undefined && issuedAtMs <= at)
        throw new AppError('unauthenticated', 'The access token has been revoked');
    }
  }

  /**
   * Resolves once this process has read every revocation published before the call began
   * (one question to NATS shared by concurrent callers); `service_unavailable` after
   * `timeoutMs` (fail closed). Not async, and no timer of its own: it runs on every request
   * (Deadlines: one timer bounds every request's wait).
   */
  upToDate(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    return this.deadlines.within(this.head.latestSeq(), timeoutMs, tooLate, uncheckable).then((latest) =>
      // Already read that far (the usual case): no second wait, no timer.
      latest <= this.follower.consumedSeq
        ? undefined
        : this.follower.waitConsumed(latest, Math.max(1, deadline - performance.now())),
    );
  }

  /** The stream position read so far: what an answer asked of identity now is at least as new as. */
  get consumedSeq(): number {
    return this.follower.consumedSeq;
  }

  /**
   * True when the API key or its application was revoked (or disabled) at a stream position
   * after `sinceSeq`: what was learnt of the key before then is void. Call after upToDate().
   */
  revokedSince(key: { apiKeyId?: string; applicationId: string }, sinceSeq: number): boolean {
    const ids = [keyOf(TokenRevocationKind.APPLICATION, key.applicationId)];
    if (key.apiKeyId !== undefined) ids.push(keyOf(TokenRevocationKind.API_KEY, key.apiKeyId));
    for (const id of ids) {
      const seq = this.revoked.get(id)?.seq;
      if (seq !== undefined && seq > sinceSeq) return true;
    }
    return false;
  }

  private apply(data: Uint8Array, seq: number): void {
    try {
      const e = fromBinary(events.tokensRevoked.message, data);
      if (!e.revokedAt || e.subjectId === '' || e.kind === TokenRevocationKind.UNSPECIFIED)
        throw new Error('incomplete');
      const at = timestampDate(e.revokedAt).getTime();
      const key = keyOf(e.kind, e.subjectId);
      const known = this.revoked.get(key);
      this.revoked.set(key, { at: Math.max(at, known?.at ?? Number.NEGATIVE_INFINITY), seq });
      this.prune();
    } catch (error) {
      this.logger.warn({ err: error, seq }, 'undecodable token revocation ignored');
    }
  }

  /** Revocations older than the horizon only concern expired tokens. */
  private prune(): void {
    if (this.revoked.size < 10_000) return;
    const horizon = this.now() - REVOCATION_HORIZON_MS;
    for (const [key, { at }] of this.revoked) if (at < horizon) this.revoked.delete(key);
  }
}
