import { AppError } from '@context-gateway/errors';
import * as client from 'openid-client';

/** How long one request to an IdP (discovery, token) may take, in seconds. */
const IDP_TIMEOUT_SECONDS = 10;
/** A discovered configuration is reused this long; a changed IdP is re-read after it. */
const DISCOVERY_TTL_MS = 10 * 60_000;
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The issuer an admin typed, checked before anything is fetched: an absolute https URL
 * without credentials, query or fragment (OpenID Connect Discovery §2), or http on this
 * machine when `allowInsecureLocalhost` (development and tests only).
 */
export function parseIssuer(value: string, allowInsecureLocalhost: boolean): URL {
  const url = URL.parse(value.trim());
  const refuse = (why: string) =>
    new AppError('sso_issuer_invalid', `The issuer ${why}`, [{ path: 'issuer', message: why }]);
  if (!url) throw refuse('must be an absolute URL');
  if (url.username || url.password || url.search || url.hash)
    throw refuse('must have no credentials, query or fragment');
  const local = LOCAL_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local && allowInsecureLocalhost)) {
    throw refuse('must use https');
  }
  return url;
}

/**
 * openid-client configurations for organizations' IdPs: discovery (the issuer in the
 * document must be the issuer asked for, which openid-client checks), cached per
 * organization and configuration revision so a sign-in does not fetch it every time.
 */
export class SsoIssuers {
  readonly #cache = new Map<string, { config: client.Configuration; until: number }>();

  constructor(private readonly options: { allowInsecureLocalhost: boolean; now: () => number }) {}

  /** Fetches and checks the issuer's discovery document; `sso_issuer_invalid` when it fails. */
  async discover(issuer: string, clientId: string, clientSecret: string): Promise<client.Configuration> {
    const url = parseIssuer(issuer, this.options.allowInsecureLocalhost);
    const insecure = url.protocol === 'http:';
    let config: client.Configuration;
    try {
      config = await client.discovery(url, clientId, undefined, client.ClientSecretBasic(clientSecret), {
        timeout: IDP_TIMEOUT_SECONDS,
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
      });
    } catch (error) {
      throw new AppError('sso_issuer_invalid', `The issuer's discovery failed: ${describe(error)}`, [
        { path: 'issuer', message: 'discovery failed' },
      ]);
    }
    const metadata = config.serverMetadata();
    const methods = metadata.code_challenge_methods_supported;
    if (!metadata.authorization_endpoint || !metadata.token_endpoint || !metadata.jwks_uri) {
      throw new AppError('sso_issuer_invalid', 'The issuer has no authorization, token or JWKS endpoint');
    }
    if (methods && !methods.includes('S256')) {
      throw new AppError('sso_issuer_invalid', 'The issuer does not support PKCE with S256');
    }
    config.timeout = IDP_TIMEOUT_SECONDS;
    return config;
  }

  /** The configuration for one stored organization IdP (`revision`: its updatedAt). */
  async forOrganization(
    orgId: string,
    revision: Date,
    settings: { issuer: string; clientId: string; clientSecret: () => Promise<string> },
  ): Promise<client.Configuration> {
    const key = `${orgId}@${revision.getTime()}`;
    const hit = this.#cache.get(key);
    if (hit && hit.until > this.options.now()) return hit.config;
    const config = await this.discover(settings.issuer, settings.clientId, await settings.clientSecret());
    for (const k of this.#cache.keys()) if (k.startsWith(`${orgId}@`)) this.#cache.delete(k);
    this.#cache.set(key, { config, until: this.options.now() + DISCOVERY_TTL_MS });
    return config;
  }
}

/**
 * What openid-client said, without anything the remote party chose: its messages are
 * fixed strings naming the check that failed (issuer, nonce, state, signature, ...).
 */
export function describe(error: unknown): string {
  const e = error as { message?: unknown; code?: unknown; error?: unknown };
  if (typeof e.error === 'string')
    return `the identity provider answered ${e.error.replace(/[^a-z_]/g, '').slice(0, 40)}`;
  const message = typeof e.message === 'string' ? e.message.slice(0, 200) : 'unknown error';
  return typeof e.code === 'string' ? `${message} (${e.code})` : message;
}
