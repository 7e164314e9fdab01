import { describe, expect, it } from '@jest/globals';

import { describeScope, oauthConsentPage, oauthErrorPage } from './consent-page.js';

describe('the OAuth consent page', () => {
  const page = (over: Partial<Parameters<typeof oauthConsentPage>[0]> = {}) =>
    oauthConsentPage({
      applicationName: 'Acme',
      redirectHost: 'acme.example',
      scopes: ['github:read:repos'],
      action: '/oauth/interaction/abc',
      displayName: 'Ada',
      ...over,
    });

  it('names the application, the host the browser returns to, and each scope', () => {
    const html = page({ scopes: ['openid', 'github:read:repos', 'github:create_issue'] });
    expect(html).toContain('Acme wants to access your Context Gateway data');
    expect(html).toContain('<strong>acme.example</strong>');
    expect(html).toContain('Read your github repos');
    expect(html).toContain('Use github: create_issue');
    expect(html).toContain('Know who you are on Context Gateway');
    expect(html).toContain('action="/oauth/interaction/abc"');
  });

  it('escapes everything an application or person chose', () => {
    const html = page({
      applicationName: '<script>alert(1)</script>',
      displayName: '"><img src=x onerror=alert(1)>',
      scopes: ['x:read:<b>'],
      redirectHost: "evil'.example",
    });
    expect(html).not.toMatch(/<script>|<img|<b>/);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('evil&#39;.example');
  });

  it('shows the stable error code on the error page, escaped', () => {
    expect(oauthErrorPage('T', 'm<', 'invalid_<x>')).toContain('<code>invalid_&lt;x&gt;</code>');
  });

  it.each([
    ['spotify:read:playlists', 'Read your spotify playlists'],
    ['github:read', 'Read your github data'],
    ['offline_access', 'Keep this access when you are not using it, until you revoke it'],
  ])('describes %s', (scope, words) => {
    expect(describeScope(scope)).toBe(words);
  });
});
