import { describe, expect, it } from '@jest/globals';

import { checkCallbackUrl, checkDeclaration } from './application-rules.js';

describe('callback URLs', () => {
  it.each(['https://app.example.com/callback', 'http://localhost:3000/cb', 'http://127.0.0.1:9000/oauth/done?x=1'])(
    'accepts %s',
    (url) => {
      expect(checkCallbackUrl(url, 'u')).toEqual({ url, problems: [] });
    },
  );

  it.each([
    ['http://app.example.com/cb', 'https'],
    ['/relative/cb', 'absolute'],
    ['https://app.example.com/cb#frag', 'fragment'],
    ['https://user:pw@app.example.com/cb', 'user info'],
    ['https://APP.example.com/cb', 'normalized'],
    ['javascript:alert(1)', 'https'],
    ['http://localhost.evil.com/cb', 'https'],
  ])('refuses %s (%s)', (url, why) => {
    const { url: accepted, problems } = checkCallbackUrl(url, 'u');
    expect(accepted).toBeUndefined();
    expect(problems[0]?.message).toContain(why);
  });
});

describe('application declarations', () => {
  it('accepts scopes of declared integrations', () => {
    expect(
      checkDeclaration({
        callbackUrls: ['https://a.example/cb'],
        integrations: ['github', 'spotify'],
        scopes: ['github:read:repos', 'spotify:read:playlists', 'github:create_issue'],
      }),
    ).toEqual([]);
  });

  it('refuses a scope of an undeclared integration and an empty callback list', () => {
    expect(
      checkDeclaration({ callbackUrls: [], integrations: ['github'], scopes: ['spotify:read:playlists'] }),
    ).toEqual([
      { path: 'callbackUrls', message: 'must list at least one URL' },
      { path: 'scopes.0', message: 'belongs to an integration the application does not declare' },
    ]);
  });
});
