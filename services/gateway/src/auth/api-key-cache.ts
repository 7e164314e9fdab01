import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { TokenRevocations } from '../oauth/token-revocations.js';
import type { TokenDigest } from './token-digest.js';

/** Who an API key speaks for, as identity answered. */
export interface ApiKeyPrincipal {
  orgId: string;
  applicationId: string;
  apiKeyId: string;
}

interface Entry {
  principal: ApiKeyPrincipal;
  /** The revocation stream position read when identity was asked: anything after it voids the entry. */
  seqAtAsk: number;
  /** performance.now() of that question. */
  askedAt: number;
}

/**
 * The gateway's memory of the API keys identity accepted (docs/identity.md, "API keys at
 * the edge"), so the query path does not ask identity on every request and keeps answering
 * while identity restarts.
 *
 * Revocation stays as strict as asking identity each time. identity publishes
 * `tokens_revoked` (kind API_KEY for a key, APPLICATION when an application is disabled) on
 * the CONTROL stream before its revoke call returns. Before a remembered key is used, the
 * gateway reads that stream up to its newest message at the time of the request
 * (TokenRevocations.upToDate: one question to NATS shared by concurrent requests), and drops
 * the entry when its key or application was revoked at a stream position after the one
 * read when identity was asked. So a key revoked before a request started is refused by it,
 * on every gateway; an unreadable stream fails closed.
 *
 * An entry is asked of identity again in the background after API_KEY_REFRESH_MS (which
 * keeps identity's last-used time accurate) and in the foreground after API_KEY_MAX_AGE_MS.
 * Concurrent first uses of one key share one question. Keys identity refused are not
 * remembered: every guess still costs the guesser a round trip and counts as a failure.
 */
@Injectable()
export class ApiKeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly asking = new Map<string, Promise<Entry>>();
  private readonly refreshMs: number;
  private readonly maxAgeMs: number;
  private readonly maxEntries: number;
  private readonly freshnessMs: number;

  constructor(
    private readonly rpcClient: RpcClient,
    private readonly revocations: TokenRevocations,
    @Inject(SERVICE_ENV) env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.refreshMs = env.API_KEY_REFRESH_MS;
    this.maxAgeMs = env.API_KEY_MAX_AGE_MS;
    this.maxEntries = env.API_KEY_CACHE_ENTRIES;
    this.freshnessMs = env.POLICY_FRESHNESS_TIMEOUT_MS;
  }

  /**
   * The key's principal; `unauthenticated` for a key identity refuses (or refused since it was
   * remembered). Entries are named by the key's digest: the only form in which a presented
   * key is kept in memory.
   */
  async authenticate({ token: apiKey, digest: id }: TokenDigest): Promise<ApiKeyPrincipal> {
    const entry = this.entries.get(id);
    if (entry && this.maxAgeMs > 0) {
      const age = performance.now() - entry.askedAt;
      if (age < this.maxAgeMs) {
        await this.revocations.upToDate(this.freshnessMs);
        // Still the same entry, and nothing revoked it since identity was asked.
        if (this.entries.get(id) === entry && !this.revocations.revokedSince(entry.principal, entry.seqAtAsk)) {
          if (age >= this.refreshMs) this.refreshInBackground(id, apiKey);
          return entry.principal;
        }
      }
      this.entries.delete(id);
    }
    return (await this.ask(id, apiKey)).principal;
  }

  /** Asks identity (one question per key at a time) and remembers an accepted key. */
  private ask(id: string, apiKey: string): Promise<Entry> {
    const pending = this.asking.get(id);
    if (pending) return pending;
    const question = this.askIdentity(id, apiKey).finally(() => this.asking.delete(id));
    this.asking.set(id, question);
    return question;
  }

  private async askIdentity(id: string, apiKey: string): Promise<Entry> {
    // Read before asking: identity's answer is at least as new as this position.
    const seqAtAsk = this.revocations.consumedSeq;
    const askedAt = performance.now();
    try {
      const key = await this.rpcClient.request(rpc.identity.authenticateApiKey, { apiKey });
      const entry = {
        principal: { orgId: key.orgId, applicationId: key.applicationId, apiKeyId: key.apiKeyId },
        seqAtAsk,
        askedAt,
      };
      this.remember(id, entry);
      return entry;
    } catch (error) {
      if (error instanceof AppError && error.code === 'unauthenticated') this.entries.delete(id);
      throw error;
    }
  }

  private refreshInBackground(id: string, apiKey: string): void {
    if (this.asking.has(id)) return;
    this.ask(id, apiKey).catch((error: unknown) => {
      // A refused key is already forgotten; identity being away is not the key's fault.
      const code = AppError.from(error).code;
      if (code !== 'unauthenticated') this.logger.debug({ code }, 'api key refresh failed; the entry is kept');
    });
  }

  private remember(id: string, entry: Entry): void {
    if (this.maxAgeMs <= 0) return;
    if (this.entries.size >= this.maxEntries && !this.entries.has(id)) {
      // Maps iterate in insertion order: drop the oldest.
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.delete(id);
    this.entries.set(id, entry);
  }
}
