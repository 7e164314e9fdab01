import { describe, expect, it } from '@jest/globals';

import { IntegrationCatalog } from './integration-catalog.js';

describe('IntegrationCatalog', () => {
  const catalog = IntegrationCatalog.load({
    INTEGRATION_GITHUB_BASE_URL: 'http://127.0.0.1:9100',
    INTEGRATION_GITHUB_CLIENT_ID: 'cid',
    INTEGRATION_SPOTIFY_TOKEN_URL: 'http://127.0.0.1:9200/token',
  });

  it('loads every provider file, the API-key one included', () => {
    expect(catalog.keys()).toEqual(expect.arrayContaining(['github', 'spotify', 'demo', 'demo-keys']));
    expect(catalog.get('demo-keys').authType).toBe('api_key');
  });

  it('points endpoints at a simulator when BASE_URL is set, keeping the real paths', () => {
    const github = catalog.get('github');
    expect(github.oauth?.authorizationUrl).toBe('http://127.0.0.1:9100/login/oauth/authorize');
    expect(github.oauth?.tokenUrl).toBe('http://127.0.0.1:9100/login/oauth/access_token');
    expect(github.apiBaseUrl).toBe('http://127.0.0.1:9100/');
    expect(github.oauth?.clientId).toBe('cid');
    expect(catalog.get('spotify').oauth?.tokenUrl).toBe('http://127.0.0.1:9200/token');
    expect(catalog.get('spotify').oauth?.authorizationUrl).toBe('https://accounts.spotify.com/authorize');
  });

  it('maps our scopes to the source scopes, de-duplicated', () => {
    const github = catalog.get('github');
    expect(catalog.sourceScopes(github, ['github:read:repos', 'github:read:issues', 'github:read:profile'])).toEqual([
      'read:user',
      'repo',
    ]);
  });

  it('refuses an unknown integration or a scope of another integration', () => {
    expect(() => catalog.get('gitlab')).toThrow(expect.objectContaining({ code: 'integration_not_allowed' }));
    expect(() => catalog.checkScopes(catalog.get('github'), ['spotify:read:playlists'])).toThrow(
      expect.objectContaining({ code: 'scope_not_allowed' }),
    );
  });

  it('loads a file-export integration (netflix): no API, no OAuth, no key, what the person uploads', () => {
    const netflix = catalog.get('netflix');
    expect(netflix.authType).toBe('file_export');
    expect(netflix.oauth).toBeUndefined();
    expect(netflix.apiKey).toBeUndefined();
    expect(netflix.export?.format).toMatch(/ViewingActivity\.csv/);
    expect(netflix.apiBaseUrl).toBe('');
    expect(catalog.describe(netflix, ['netflix:read:history'])[0]?.description).toMatch(/watched/);
  });

  it('describes each scope in plain words', () => {
    const [described] = catalog.describe(catalog.get('spotify'), ['spotify:read:playlists']);
    expect(described?.description).toMatch(/playlists/);
  });
});
