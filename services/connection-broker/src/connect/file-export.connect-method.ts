import { Injectable } from '@nestjs/common';

import { IntegrationCatalog } from '../integrations/integration-catalog.js';
import type { ConnectMethod, Consent, ConsentInput } from './connect-method.js';

/**
 * file_export: no source login and no secret; the data arrives as uploads. The connection
 * still gets a data key and an (empty) sealed credential set, so every invariant elsewhere
 * holds as is: "usable" means key + ciphertext present, deletion shreds the key, reuse checks
 * the key.
 */
@Injectable()
export class FileExportConnectMethod implements ConnectMethod {
  constructor(private readonly catalog: IntegrationCatalog) {}

  assertConfigured(): void {
    // Nothing to configure: there is no source to talk to.
  }

  consent({ session, integration }: ConsentInput): Promise<Consent> {
    return Promise.resolve({
      next: 'commit',
      credential: { accessToken: '', tokenType: 'none' },
      sourceScopes: this.catalog.sourceScopes(integration, session.scopes),
    });
  }
}
