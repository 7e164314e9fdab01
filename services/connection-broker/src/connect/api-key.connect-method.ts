import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import { IntegrationCatalog } from '../integrations/integration-catalog.js';
import type { ConnectMethod, Consent, ConsentInput } from './connect-method.js';

/** api_key: the person pastes a key on the consent page; it is the credential, no source login. */
@Injectable()
export class ApiKeyConnectMethod implements ConnectMethod {
  constructor(private readonly catalog: IntegrationCatalog) {}

  assertConfigured(): void {
    // Nothing of ours to configure: the person brings the key.
  }

  consent({ session, integration, apiKey }: ConsentInput): Promise<Consent> {
    // The pattern only catches a paste of the wrong thing; the source judges the key on first use.
    if (!integration.apiKey?.pattern.test(apiKey)) {
      return Promise.reject(
        new AppError('validation_failed', `That does not look like a ${integration.displayName} API key`, [
          { path: 'apiKey', message: 'invalid format' },
        ]),
      );
    }
    return Promise.resolve({
      next: 'commit',
      credential: { accessToken: apiKey, tokenType: 'api_key' },
      sourceScopes: this.catalog.sourceScopes(integration, session.scopes),
    });
  }
}
