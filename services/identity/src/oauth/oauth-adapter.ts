import type { Clock } from '@context-gateway/clock';
import { type Adapter, type AdapterPayload, errors } from 'oidc-provider';

import { clientMetadata } from './oauth-clients.js';
import type { OAuthClientsRepository } from './oauth-clients.repository.js';
import type { OAuthStoreRepository } from './oauth-store.repository.js';

/** Models a spent instance of which, presented again, means a stolen credential. */
const SINGLE_USE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

/**
 * oidc-provider's storage over identity's Postgres schema. `Client` is not stored here:
 * it reads the Application rows (every application is a client under its client id).
 * Everything else is a row of `oauth_payloads`.
 */
export function oauthAdapterFactory(deps: {
  store: OAuthStoreRepository;
  clients: OAuthClientsRepository;
  clock: Clock;
}): (model: string) => Adapter {
  return (model) =>
    model === 'Client' ? new ApplicationClientAdapter(deps.clients) : new PostgresAdapter(model, deps);
}

class PostgresAdapter implements Adapter {
  constructor(
    private readonly model: string,
    private readonly deps: { store: OAuthStoreRepository; clock: Clock },
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const expiresAt = expiresIn ? new Date(this.deps.clock.now() + expiresIn * 1_000) : null;
    const { grantId, uid, userCode } = payload;
    await this.deps.store.upsert(this.model, id, payload, { grantId, uid, userCode }, expiresAt);
  }

  find(id: string): Promise<AdapterPayload | undefined> {
    return this.#read({ id });
  }

  findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.#read({ uid });
  }

  findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.#read({ userCode });
  }

  /**
   * Spends a code or refresh token. The provider checks `consumed` before calling this,
   * but two requests can both pass that check: the loser of the compare-and-set is a
   * replay like any other, so its grant is revoked and it gets `invalid_grant`.
   */
  async consume(id: string): Promise<void> {
    if (await this.deps.store.consume(this.model, id, this.deps.clock.date())) return;
    if (!SINGLE_USE.has(this.model)) return;
    const grantId = await this.deps.store.grantIdOf(this.model, id);
    if (grantId) await this.deps.store.revokeByGrantId(grantId);
    throw new errors.InvalidGrant('grant request is invalid');
  }

  async destroy(id: string): Promise<void> {
    await this.deps.store.destroy(this.model, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.deps.store.revokeByGrantId(grantId);
  }

  async #read(where: { id: string } | { uid: string } | { userCode: string }): Promise<AdapterPayload | undefined> {
    const row = await this.deps.store.find(this.model, where);
    if (!row) return undefined;
    // Expired rows wait for the pruner; to the provider they are already gone.
    if (row.expiresAt && row.expiresAt.getTime() <= this.deps.clock.now()) return undefined;
    const payload = row.payload as AdapterPayload;
    return row.consumedAt ? { ...payload, consumed: Math.floor(row.consumedAt.getTime() / 1_000) } : payload;
  }
}

/** Read-only: clients are administered as Applications (admin API), never through the provider. */
class ApplicationClientAdapter implements Adapter {
  constructor(private readonly clients: OAuthClientsRepository) {}

  async find(clientId: string): Promise<AdapterPayload | undefined> {
    const application = await this.clients.findByClientId(clientId);
    return application ? clientMetadata(application) : undefined;
  }

  upsert(): Promise<void> {
    return Promise.reject(new Error('clients are applications: change them through the admin API'));
  }
  findByUid(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  findByUserCode(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  consume(): Promise<void> {
    return Promise.resolve();
  }
  destroy(): Promise<void> {
    return Promise.reject(new Error('clients are applications: change them through the admin API'));
  }
  revokeByGrantId(): Promise<void> {
    return Promise.resolve();
  }
}
