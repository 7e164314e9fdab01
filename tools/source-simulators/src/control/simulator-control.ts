import type { Counters } from '../counters.js';
import type { Quirks } from '../quirks.js';
import type { StormConfig } from '../throttle.js';
import type { WebhookDelivery } from '../webhooks.js';

export interface RegisteredClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
  name: string;
}

export interface AccountSummary {
  id: number;
  login: string;
  name: string;
  email: string;
  seed: string;
  counts: Record<string, number>;
}

/**
 * Typed client for a simulator's control API (/_sim/), usable against one started in
 * this process or one running elsewhere (`new SimulatorControl(url, token)`).
 */
export class SimulatorControl {
  constructor(
    readonly url: string,
    private readonly token?: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.url}/_sim${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`simulator control ${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  state(): Promise<Record<string, unknown>> {
    return this.call('GET', '/state');
  }

  registerClient(input: {
    redirect_uris: string[];
    client_id?: string;
    client_secret?: string;
    name?: string;
  }): Promise<RegisteredClient> {
    return this.call('POST', '/clients', input);
  }

  createAccount(input: {
    login: string;
    password?: string;
    name?: string;
    email?: string;
    seed?: string;
    counts?: Record<string, number>;
  }): Promise<AccountSummary> {
    return this.call('POST', '/accounts', input);
  }

  /** Regenerates the account's collections deterministically (e.g. `{ repos: 100_000 }`). */
  seed(login: string, counts: Record<string, number>, seed?: string): Promise<AccountSummary & { seedMs: number }> {
    return this.call('POST', `/accounts/${encodeURIComponent(login)}/seed`, { counts, ...(seed ? { seed } : {}) });
  }

  /** Switches the source's real-world quirks on for one account (replacing earlier ones). */
  setQuirks(login: string, quirks: Quirks): Promise<{ login: string; quirks: Quirks }> {
    return this.call('PUT', `/accounts/${encodeURIComponent(login)}/quirks`, quirks);
  }

  /** The raw items of a collection (the simulator's own model, not the API shape). */
  list<T = Record<string, unknown>>(login: string, collection: string): Promise<{ total: number; items: T[] }> {
    return this.call('GET', `/accounts/${encodeURIComponent(login)}/${collection}`);
  }

  addItem<T = Record<string, unknown>>(
    login: string,
    collection: string,
    fields: Record<string, unknown> = {},
  ): Promise<T> {
    return this.call('POST', `/accounts/${encodeURIComponent(login)}/${collection}`, fields);
  }

  updateItem<T = Record<string, unknown>>(
    login: string,
    collection: string,
    id: string | number,
    fields: Record<string, unknown>,
  ): Promise<T> {
    return this.call(
      'PATCH',
      `/accounts/${encodeURIComponent(login)}/${collection}/${encodeURIComponent(String(id))}`,
      fields,
    );
  }

  deleteItem<T = Record<string, unknown>>(login: string, collection: string, id: string | number): Promise<T> {
    return this.call(
      'DELETE',
      `/accounts/${encodeURIComponent(login)}/${collection}/${encodeURIComponent(String(id))}`,
    );
  }

  /** Spotify: adds `count` generated tracks to a playlist (at the end, or at `position`). */
  addPlaylistTracks(
    login: string,
    playlistId: string,
    count = 1,
    position?: number,
  ): Promise<{ id: string; snapshot_id: string; total: number; added: string[] }> {
    return this.call(
      'POST',
      `/accounts/${encodeURIComponent(login)}/playlists/${encodeURIComponent(playlistId)}/tracks`,
      {
        count,
        ...(position !== undefined ? { position } : {}),
      },
    );
  }

  /** Spotify: removes a track from a playlist. */
  removePlaylistTrack(
    login: string,
    playlistId: string,
    trackId: string,
  ): Promise<{ id: string; snapshot_id: string; total: number }> {
    return this.call(
      'DELETE',
      `/accounts/${encodeURIComponent(login)}/playlists/${encodeURIComponent(playlistId)}/tracks/${encodeURIComponent(trackId)}`,
    );
  }

  /** demo: mints a personal API key for the account (used as a bearer token on the API). */
  createApiKey(login: string): Promise<{ key: string }> {
    return this.call('POST', `/accounts/${encodeURIComponent(login)}/api-keys`, {});
  }

  revokeApiKey(key: string): Promise<void> {
    return this.call('DELETE', `/api-keys/${encodeURIComponent(key)}`);
  }

  expireTokens(includeRefreshTokens = false): Promise<{ expired: number }> {
    return this.call('POST', '/tokens/expire', { includeRefreshTokens });
  }

  settings(input: {
    accessTokenTtlSeconds?: number;
    refreshTokenTtlSeconds?: number;
    codeTtlSeconds?: number;
    rateLimit?: { limit?: number; windowSeconds?: number; maxConcurrent?: number };
    latencyMs?: number;
  }): Promise<Record<string, unknown>> {
    return this.call('PATCH', '/settings', input);
  }

  startStorm(config: Partial<StormConfig>): Promise<unknown> {
    return this.call('PUT', '/storm', config);
  }

  stopStorm(): Promise<unknown> {
    return this.call('DELETE', '/storm');
  }

  counters(): Promise<Counters> {
    return this.call('GET', '/counters');
  }

  resetCounters(): Promise<Counters> {
    return this.call('DELETE', '/counters');
  }

  configureWebhook(input: { url: string; secret: string; events?: string[] }): Promise<unknown> {
    return this.call('PUT', '/webhooks', input);
  }

  removeWebhook(): Promise<void> {
    return this.call('DELETE', '/webhooks');
  }

  /** Deliveries so far, after the ones in flight have finished. */
  webhookDeliveries(): Promise<WebhookDelivery[]> {
    return this.call('GET', '/webhooks/deliveries');
  }
}
