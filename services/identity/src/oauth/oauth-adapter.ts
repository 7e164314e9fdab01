import type { Clock } from '@context-gateway/clock';
import { type Adapter, type AdapterPayload, errors } from 'oidc-provider';

import { REGISTRATION_TOKEN_METADATA } from './dynamic-registration.js';
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
  registration: ClientRegistration;
}): (model: string) => Adapter {
  return (model) => {
    if (model === 'Client') return new ApplicationClientAdapter(deps.clients, deps.registration);
    if (model === 'InitialAccessToken') return new RegistrationTokenAdapter(deps.registration);
    return new PostgresAdapter(model, deps);
  };
}

/** Dynamic client registration's storage: initial access tokens are read, registered clients become applications. */
export interface ClientRegistration {
  /** The InitialAccessToken payload for a presented token, while it may register a client. */
  findToken(presented: string): Promise<AdapterPayload | undefined>;
  /** Spends the token and creates the application; throws invalid_token when the token was spent meanwhile. */
  register(clientId: string, metadata: AdapterPayload): Promise<void>;
}

/**
 * What the two adapters that are not oidc-provider's own storage share: nothing is found by
 * uid or user code, and consuming or revoking by grant changes nothing here.
 */
abstract class ForeignModelAdapter implements Adapter {
  abstract find(id: string): Promise<AdapterPayload | undefined>;
  abstract upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
  abstract destroy(id: string): Promise<void>;
  findByUid(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  findByUserCode(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  consume(): Promise<void> {
    return Promise.resolve();
  }
  revokeByGrantId(): Promise<void> {
    return Promise.resolve();
  }
}

/** Read-only: initial access tokens are issued through the admin API. */
class RegistrationTokenAdapter extends ForeignModelAdapter {
  constructor(private readonly registration: ClientRegistration) {
    super();
  }

  find(presented: string): Promise<AdapterPayload | undefined> {
    return this.registration.findToken(presented);
  }
  upsert(): Promise<void> {
    return Promise.reject(new Error('initial access tokens are issued through the admin API'));
  }
  destroy(): Promise<void> {
    return Promise.resolve();
  }
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

/**
 * Clients are administered as Applications (admin API), never through the provider, with one
 * exception: a client registered dynamically (RFC 7591, with an initial access token) is
 * created here, as a new Application of the token's organization.
 */
class ApplicationClientAdapter extends ForeignModelAdapter {
  constructor(
    private readonly clients: OAuthClientsRepository,
    private readonly registration: ClientRegistration,
  ) {
    super();
  }

  async find(clientId: string): Promise<AdapterPayload | undefined> {
    const application = await this.clients.findByClientId(clientId);
    return application ? clientMetadata(application) : undefined;
  }

  upsert(clientId: string, metadata: AdapterPayload): Promise<void> {
    if (typeof metadata[REGISTRATION_TOKEN_METADATA] !== 'string') {
      return Promise.reject(new Error('clients are applications: change them through the admin API'));
    }
    return this.registration.register(clientId, metadata);
  }
  destroy(): Promise<void> {
    return Promise.reject(new Error('clients are applications: change them through the admin API'));
  }
}
