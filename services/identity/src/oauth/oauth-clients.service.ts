import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import type { Application } from '../generated/prisma/client.js';
import { newClientSecret, TOKEN_ENDPOINT_AUTH_METHODS, type TokenEndpointAuthMethod } from './oauth-clients.js';
import { OAuthClientsRepository } from './oauth-clients.repository.js';

/** JWK members that only a private or symmetric key has: a client's key set must carry none. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

export interface OAuthClientSettings {
  orgId: string;
  applicationId: string;
  tokenEndpointAuthMethod: string;
  jwksJson: string;
  jwksUri: string;
  rotateSecret: boolean;
  /** Empty: no token exchange. */
  idpClientId: string;
}

/** Client ids at IdPs are opaque strings; keep them to printable ASCII of a sane length. */
const IDP_CLIENT_ID = /^[\x21-\x7e]{1,255}$/;

/**
 * How an application authenticates as an OAuth client. Switching method clears what the
 * old one used (a public client keeps no secret, a key-authenticated one no secret either),
 * so a forgotten credential never keeps working behind a new setting.
 */
@Injectable()
export class OAuthClientsService {
  constructor(private readonly clients: OAuthClientsRepository) {}

  async configure(settings: OAuthClientSettings): Promise<{ application: Application; clientSecret?: string }> {
    const method = settings.tokenEndpointAuthMethod as TokenEndpointAuthMethod;
    if (!TOKEN_ENDPOINT_AUTH_METHODS.includes(method)) {
      throw invalid('tokenEndpointAuthMethod', `must be one of ${TOKEN_ENDPOINT_AUTH_METHODS.join(', ')}`);
    }
    if (method !== 'client_secret_basic' && settings.rotateSecret) {
      throw invalid('rotateSecret', 'only a client_secret_basic client has a secret');
    }
    if (method !== 'private_key_jwt' && (settings.jwksJson || settings.jwksUri)) {
      throw invalid('jwks', 'keys are only for a private_key_jwt client');
    }
    if (settings.idpClientId && method === 'none') {
      // A public client could not prove it is the application the ID token was issued to.
      throw invalid('idpClientId', 'token exchange is only for a confidential client');
    }
    if (settings.idpClientId && !IDP_CLIENT_ID.test(settings.idpClientId)) {
      throw invalid('idpClientId', 'must be 1 to 255 printable characters without spaces');
    }
    const existing = await this.clients.findInOrg(settings.orgId, settings.applicationId);
    if (!existing) throw new AppError('not_found', 'No such application in this organization');
    if (existing.clientMetadataUrl) {
      // Its redirect URIs and keys are in its metadata document, not ours to set.
      throw invalid(
        'tokenEndpointAuthMethod',
        'an MCP client allowed by its metadata URL is configured by its document',
      );
    }

    let clientSecret: string | undefined;
    let update: Parameters<OAuthClientsRepository['updateClientSettings']>[1];
    switch (method) {
      case 'none':
        update = { tokenEndpointAuthMethod: method, clientSecretHash: null, jwks: null, jwksUri: null };
        break;
      case 'client_secret_basic': {
        const issued = settings.rotateSecret ? newClientSecret() : undefined;
        clientSecret = issued?.secret;
        // Keeping the method without rotating keeps the current secret.
        const keep = existing.tokenEndpointAuthMethod === method ? existing.clientSecretHash : null;
        update = { tokenEndpointAuthMethod: method, clientSecretHash: issued?.hash ?? keep, jwks: null, jwksUri: null };
        break;
      }
      case 'private_key_jwt':
        update = {
          tokenEndpointAuthMethod: method,
          clientSecretHash: null,
          ...parseKeys(settings.jwksJson, settings.jwksUri),
        };
        break;
    }
    let application: Application | undefined;
    try {
      application = await this.clients.updateClientSettings(settings.applicationId, {
        ...update,
        idpClientId: settings.idpClientId || null,
      });
    } catch (error) {
      // One application per client at an IdP: its ID tokens are that application's alone.
      if ((error as { code?: string }).code === 'P2002') {
        throw new AppError('conflict', 'Another application already names this client id at an IdP', [
          { path: 'idpClientId', message: 'already used by another application' },
        ]);
      }
      throw error;
    }
    if (!application) throw new AppError('not_found', 'No such application in this organization');
    return { application, ...(clientSecret ? { clientSecret } : {}) };
  }
}

function parseKeys(jwksJson: string, jwksUri: string): { jwks: { keys: object[] } | null; jwksUri: string | null } {
  if (Boolean(jwksJson) === Boolean(jwksUri)) throw invalid('jwks', 'give either jwksJson or jwksUri');
  if (jwksUri) {
    const url = URL.parse(jwksUri);
    if (!url || url.protocol !== 'https:' || url.username || url.password || url.hash) {
      throw invalid('jwksUri', 'must be an https URL without credentials or fragment');
    }
    return { jwks: null, jwksUri: url.href };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(jwksJson);
  } catch {
    throw invalid('jwksJson', 'is not JSON');
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 10) {
    throw invalid('jwksJson', 'must be a JWK Set with 1 to 10 keys');
  }
  for (const [i, key] of keys.entries()) {
    if (typeof key !== 'object' || key === null || typeof (key as { kty?: unknown }).kty !== 'string') {
      throw invalid(`jwksJson.keys[${i}]`, 'is not a JWK');
    }
    if (PRIVATE_MEMBERS.some((m) => m in key)) {
      throw invalid(`jwksJson.keys[${i}]`, 'holds private key material: register the public key only');
    }
  }
  return { jwks: { keys: keys as object[] }, jwksUri: null };
}

function invalid(path: string, message: string): AppError {
  return new AppError('validation_failed', `${path} ${message}`, [{ path, message }]);
}
