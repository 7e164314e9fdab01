import type { Clock } from '@context-gateway/clock';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import type { Collection } from './collection.js';
import type { Counters } from './counters.js';
import type { OAuthStore, TokenFormat, TokenSettings } from './oauth/oauth-store.js';
import type { Rng } from './prng.js';
import type { Quirks } from './quirks.js';
import type { StormConfig, Throttle } from './throttle.js';
import type { Webhooks } from './webhooks.js';

export type ProviderName = 'github' | 'spotify' | 'demo' | 'listenbrainz';

/** A test account at the simulated source: it signs in on the login form. */
export interface Account {
  id: number;
  login: string;
  password: string;
  name: string;
  email: string;
  createdAt: string;
  /** The seed its data was generated from (changes keep using it for new items). */
  seed: string;
  /** The counts it was last seeded with (generators read per-item settings such as `playlist_tracks`). */
  seedCounts: Record<string, number>;
  collections: Map<string, Collection<SimItem>>;
  /** The source's real-world behaviours switched on for this account (`PUT /_sim/accounts/{login}/quirks`). */
  quirks: Quirks;
}

export type SimItem = { id: string | number; [key: string]: unknown };

export interface AccountSpec {
  login: string;
  password?: string;
  name?: string;
  email?: string;
  id?: number;
  seed?: string;
  /** Items to generate per collection; unset collections get the provider's default. */
  counts?: Record<string, number>;
}

/** How one kind of item is generated and changed through the control API. */
export interface CollectionSpec {
  defaultCount: number;
  /** Item number `index` of `account`, drawn from `rng` (seeded items are reproducible). */
  generate(ctx: SimContext, account: Account, rng: Rng, index: number): SimItem;
  /**
   * Updates timestamps (and version stamps such as snapshot_id) after a create or a change.
   * `collection` is the item's collection before it is put there (e.g. to stay later than
   * the newest item when the time is also the id).
   */
  stamp(item: SimItem, nowMs: number, kind: 'create' | 'update', collection: Collection<SimItem>): void;
  /** Item fields the control API may not set. */
  readOnly?: readonly string[];
}

export type ChangeAction = 'created' | 'updated' | 'deleted';

export interface Principal {
  account: Account;
  scopes: string[];
  clientId: string;
}

export interface Provider {
  name: ProviderName;
  /** Shown on the login and consent pages. */
  title: string;
  authorizePath: string;
  tokenDefaults: TokenSettings;
  tokenFormat: TokenFormat;
  /** Scopes this source knows, each with the words the consent page shows. */
  scopes: Record<string, string>;
  /** Whether authorization responses carry `iss` (RFC 9207). */
  issParameter: boolean;
  defaultAccounts: AccountSpec[];
  /** This source's own rate-limit window when the options name none (default: GitHub's 5000 per hour). */
  rateLimitDefaults?: { limit: number; windowSeconds: number };
  /** Seed counts that are per-item settings rather than collections (Spotify's `playlist_tracks`). */
  seedSettings?: readonly string[];
  /** In generation order (GitHub issues point at repositories generated before them). */
  collections: Record<string, CollectionSpec>;
  /** Token endpoint, revocation, metadata and the resource API. */
  routes(app: FastifyInstance, ctx: SimContext): void;
  /** The 401 this source sends for a missing, unknown/revoked or expired token. */
  unauthorized(reply: FastifyReply, kind: 'missing' | 'invalid' | 'expired'): FastifyReply;
  /** The rate-limit answer during a storm. */
  throttled(reply: FastifyReply, storm: StormConfig, ctx: SimContext): FastifyReply;
  /** Extra checks after authentication (GitHub's primary rate limit); may answer itself. */
  afterAuth?(req: FastifyRequest, reply: FastifyReply, principal: Principal, ctx: SimContext): FastifyReply | undefined;
  /** Called when a resource API request has been answered (or abandoned). */
  onApiResponse?(req: FastifyRequest): void;
  /** Called once per account, after it is created and seeded. */
  onAccountCreated?(ctx: SimContext, account: Account): void;
  /** Source-specific control routes, registered under /_sim/ (Spotify's playlist entries). */
  controlRoutes?(sim: FastifyInstance, ctx: SimContext): void;
  /** Called after the control API changed an item (GitHub fires webhooks). */
  onChange?(
    ctx: SimContext,
    account: Account,
    collection: string,
    action: ChangeAction,
    item: SimItem,
    changedFields: string[],
  ): void;
}

export interface SimContext {
  provider: Provider;
  /** Base URL clients use (the issuer); set once the server listens. */
  url: string;
  store: OAuthStore;
  counters: Counters;
  accounts: Accounts;
  throttle: Throttle;
  webhooks: Webhooks;
  /** Primary rate limit per account (GitHub's X-RateLimit-*), settable through /_sim/settings. */
  rateLimit: { limit: number; windowSeconds: number; maxConcurrent: number };
  /** Added before every resource API answer (a slow source; time to kill a worker mid-sync). */
  latency: { ms: number };
  /** "Now" for token expiry, rate-limit windows, storms and item timestamps. */
  clock: Clock;
}

/** One of the account's collections: every account gets all of its provider's collections when it is created. */
export function collectionFor(account: Account, name: string): Collection<SimItem> {
  const collection = account.collections.get(name);
  if (!collection) throw new Error(`account ${account.login} has no ${name} collection`);
  return collection;
}

export class Accounts {
  private readonly byId = new Map<number, Account>();
  private readonly byLogin = new Map<string, Account>();
  private nextId = 1001;

  add(account: Account): void {
    this.byId.set(account.id, account);
    this.byLogin.set(account.login, account);
    this.nextId = Math.max(this.nextId, account.id + 1);
  }

  allocateId(): number {
    return this.nextId++;
  }

  byAccountId(id: number): Account | undefined {
    return this.byId.get(id);
  }

  byLoginName(login: string): Account | undefined {
    return this.byLogin.get(login);
  }

  all(): Account[] {
    return [...this.byId.values()];
  }
}
