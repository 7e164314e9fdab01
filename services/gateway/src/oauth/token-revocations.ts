import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { StreamFollower } from '@context-gateway/messaging';
import { events, streams, TokenRevocationKind } from '@context-gateway/proto';
import { DeliverPolicy, type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

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

/**
 * The gateway's copy of identity's token revocations (`control.v1.tokens_revoked` on the
 * CONTROL stream): for each grant, application and person, the latest moment before which
 * its tokens are void. The same consistency rule as the policy cache (docs/policy.md):
 * before a token is accepted, ask NATS for the last revocation's sequence *now* and wait
 * until this process has read up to it, so a revocation that returned to its caller is
 * known to the very next request, on every gateway.
 *
 * At start it replays the last REVOCATION_HORIZON_MS of revocations (a restarted gateway
 * must still refuse a token revoked a minute ago); older ones concern only expired tokens.
 */
export class TokenRevocations {
  /** kind:id → the latest revocation's time (identity's clock) and stream sequence. */
  private readonly revoked = new Map<string, { at: number; seq: number }>();
  private asking: Promise<number> | undefined;
  private askQueued: Promise<number> | undefined;
  private jsm: JetStreamManager | undefined;
  private readonly follower: StreamFollower;

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.follower = new StreamFollower(nc, {
      stream: streams.control.name,
      filterSubject: subject,
      name: 'token revocation reader',
      logger,
      onMessage: (m) => this.apply(m.data, m.seq),
      lateError: () => new AppError('service_unavailable', 'Token revocations could not be read up to date in time'),
    });
  }

  async start(): Promise<void> {
    this.jsm = await jetstreamManager(this.nc);
    const replayFrom = this.now() - REVOCATION_HORIZON_MS;
    const last = await this.lastRevocation();
    // Nothing to replay when the newest revocation is older than the horizon: it is read as "done".
    await this.follower.start(
      { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(replayFrom).toISOString() },
      last && last.time < replayFrom ? last.seq : 0,
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
   * `timeoutMs` (fail closed).
   */
  async upToDate(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const latest = await within(this.latestSeq(), timeoutMs);
    await this.follower.waitConsumed(latest, Math.max(1, deadline - performance.now()));
  }

  /** The stream position read so far: what an answer asked of identity now is at least as new as. */
  get consumedSeq(): number {
    return this.follower.consumedSeq;
  }

  /**
   * True when the API key or its application was revoked (or disabled) at a stream position
   * after `sinceSeq`: what was learnt of the key before then is void. Call after upToDate().
   */
  revokedSince(key: { apiKeyId: string; applicationId: string }, sinceSeq: number): boolean {
    for (const id of [
      keyOf(TokenRevocationKind.API_KEY, key.apiKeyId),
      keyOf(TokenRevocationKind.APPLICATION, key.applicationId),
    ]) {
      const seq = this.revoked.get(id)?.seq;
      if (seq !== undefined && seq > sinceSeq) return true;
    }
    return false;
  }

  /** The stream sequence of the newest revocation, asked after this call began (0: none). */
  private latestSeq(): Promise<number> {
    // One question in flight; callers arriving meanwhile share the next one, sent after they asked.
    if (!this.asking) {
      this.asking = this.askOnce().finally(() => (this.asking = undefined));
      return this.asking;
    }
    this.askQueued ??= this.asking
      .catch(() => 0)
      .then(() => {
        this.askQueued = undefined;
        return this.latestSeq();
      });
    return this.askQueued;
  }

  private async askOnce(): Promise<number> {
    try {
      return (await this.lastRevocation())?.seq ?? 0;
    } catch (error) {
      throw new AppError('service_unavailable', 'Token revocations could not be checked', [], { cause: error });
    }
  }

  private async lastRevocation(): Promise<{ seq: number; time: number } | undefined> {
    if (!this.jsm) throw new AppError('not_ready', 'The token revocation reader has not started');
    try {
      const m = await this.jsm.streams.getMessage(streams.control.name, { last_by_subj: subject });
      return m ? { seq: m.seq, time: m.time.getTime() } : undefined;
    } catch (error) {
      if ((error as { code?: unknown }).code === 404 || /no message found/i.test(String(error))) return undefined;
      throw error;
    }
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

/** `work`, or service_unavailable once `ms` have passed (NATS buffers requests while it reconnects). */
function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AppError('service_unavailable', 'Token revocations could not be checked in time')),
      ms,
    );
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
