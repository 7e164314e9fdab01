import { dataScopes, integrationManifests } from '@context-gateway/integration-catalog';
import { describe, expect, it } from '@jest/globals';

import { NETFLIX_IMPORT_PRODUCES } from './netflix-csv.js';
import { CONNECTORS } from './registry.js';

/**
 * The integration manifests (libs/integration-catalog) promise, per data scope, the record
 * types an app may read; the connectors and importers are what writes them. The two must
 * agree exactly: a scope promising a type nothing writes lies to the person on the consent
 * page, and a type written that no scope gives is stored for nobody.
 */
describe('integration manifests and what the connectors write', () => {
  const producers: Record<string, readonly string[]> = {
    ...Object.fromEntries(Object.values(CONNECTORS).map((c) => [c.integration, c.produces])),
    netflix: NETFLIX_IMPORT_PRODUCES,
  };
  const sorted = (types: Iterable<string>) => [...new Set(types)].sort();

  it.each(integrationManifests().map((m) => [m.key]))('%s: the data scopes promise exactly what is written', (key) => {
    const promised = Object.values(dataScopes()[key] ?? {}).flat();
    expect(sorted(promised)).toEqual(sorted(producers[key] ?? []));
  });

  it('every connector and importer belongs to an integration that has a manifest', () => {
    const keys = integrationManifests().map((m) => m.key);
    for (const integration of Object.keys(producers)) expect(keys).toContain(integration);
  });

  it('every manifest integration with an API is synced by a connector, every file export by an importer', () => {
    for (const m of integrationManifests()) {
      if (m.authType === 'file_export') expect(m.key).toBe('netflix');
      else expect(Object.keys(CONNECTORS)).toContain(m.key);
    }
  });
});
