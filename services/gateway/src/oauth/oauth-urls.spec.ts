import { describe, expect, it } from '@jest/globals';

import { identityPathFor } from './oauth-proxy.js';
import { bearerChallenge, oauthUrls } from './oauth-urls.js';

describe('the OAuth URLs derived from GATEWAY_PUBLIC_URL', () => {
  it('puts the issuer under /oauth and the resource metadata at its RFC 9728 well-known URL', () => {
    expect(oauthUrls('https://gw.example/')).toEqual({
      issuer: 'https://gw.example/oauth',
      issuerPath: '/oauth',
      resource: 'https://gw.example',
      resourceMetadata: 'https://gw.example/.well-known/oauth-protected-resource',
    });
    // A gateway under a path: the well-known segment goes between host and path.
    expect(oauthUrls('https://example.com/gw').resourceMetadata).toBe(
      'https://example.com/.well-known/oauth-protected-resource/gw',
    );
  });

  it('writes a Bearer challenge with the metadata URL, and the error when there is one', () => {
    const urls = oauthUrls('https://gw.example');
    expect(bearerChallenge(urls)).toBe(
      'Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource"',
    );
    expect(
      bearerChallenge(urls, { code: 'insufficient_scope', description: 'needs "x"', scope: 'github:read:repos' }),
    ).toBe(
      'Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource", error="insufficient_scope", error_description="needs x", scope="github:read:repos"',
    );
  });
});

describe('which paths go to the authorization server', () => {
  const urls = { issuerPath: '/oauth' };
  it.each([
    ['/oauth/token', '/oauth/token'],
    ['/oauth/auth?client_id=a', '/oauth/auth?client_id=a'],
    ['/oauth', '/oauth'],
    ['/.well-known/oauth-authorization-server/oauth', '/oauth/.well-known/openid-configuration'],
    ['/.well-known/openid-configuration/oauth?x=1', '/oauth/.well-known/openid-configuration?x=1'],
  ])('%s → %s', (path, target) => {
    expect(identityPathFor(path, urls)).toBe(target);
  });

  it.each([
    '/oauthx',
    '/v1/oauth/token',
    '/.well-known/oauth-authorization-server',
    '/.well-known/oauth-protected-resource',
  ])('not %s', (path) => {
    expect(identityPathFor(path, urls)).toBeUndefined();
  });
});
