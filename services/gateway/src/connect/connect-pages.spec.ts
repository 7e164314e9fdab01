import { describe, expect, it } from '@jest/globals';

import { html } from '../http/html.js';
import { consentPage, errorPage } from './connect-pages.js';

const view = {
  applicationName: 'Evil <script>alert(1)</script>',
  integrationName: 'GitHub',
  scopes: [{ scope: 'github:read:repos', description: 'See your repositories "including" private ones.' }],
  action: '/v1/connect/abc',
  csrf: 'c"s<rf',
  signedIn: true,
  signInUrl: '/v1/auth/signin?return_to=%2Fv1%2Fconnect%2Fabc',
  reusesConnection: false,
};

describe('consent pages', () => {
  it('escapes everything an app or a source supplies', () => {
    const page = consentPage(view);
    expect(page).not.toContain('<script>');
    expect(page).toContain('Evil &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('value="c&quot;s&lt;rf"');
    expect(page).toContain('&quot;including&quot;');
  });

  it('offers Allow as a form post when signed in, and the passkey page first when not', () => {
    expect(consentPage(view)).toMatch(
      /<button class="primary" id="allow" type="submit" name="decision" value="allow">Allow<\/button>/,
    );
    const anonymous = consentPage({ ...view, signedIn: false });
    expect(anonymous).not.toContain('value="allow"');
    expect(anonymous).toContain('href="/v1/auth/signin?return_to=%2Fv1%2Fconnect%2Fabc"');
    expect(anonymous).toContain('value="deny"');
  });

  it('has the passkey sign Allow: the challenge on the form, the scripts from our origin, and words without them', () => {
    const page = consentPage({ ...view, consentChallenge: 'Y2hhbGxlbmdl', trustedPasskeys: ['cred-1', 'cred_2'] });
    expect(page).toContain(
      '<form method="post" action="/v1/connect/abc" id="consent" data-challenge="Y2hhbGxlbmdl" data-credentials="cred-1 cred_2">',
    );
    expect(page).toContain('<input type="hidden" id="assertion" name="assertion" value="">');
    expect(page).toContain(
      '<script src="/v1/auth/assets/webauthn.js"></script><script src="/v1/connect/assets/consent.js"></script>',
    );
    expect(page).toContain('<noscript>');
    // Signed out: no challenge (it names the person), no script.
    expect(consentPage({ ...view, signedIn: false })).not.toContain('<script');
  });

  it('asks for the key on an API-key integration, and not when a connection is reused', () => {
    expect(consentPage({ ...view, apiKeyLabel: 'Your key' })).toContain('name="apiKey"');
    expect(consentPage({ ...view, apiKeyLabel: 'Your key', reusesConnection: true })).not.toContain('name="apiKey"');
  });

  it('a file-export integration asks for no key and promises no source sign-in, only the upload to come', () => {
    const page = consentPage({ ...view, fileExport: true });
    expect(page).not.toContain('name="apiKey"');
    expect(page).not.toContain('will ask you to sign in');
    expect(page).toContain('data export');
    expect(page).toContain('value="allow"');
  });

  it('keeps nested safe markup and escapes attribute breakouts in error pages', () => {
    expect(html`<b>${html`<i>${'x'}</i>`}</b>`.value).toBe('<b><i>x</i></b>');
    expect(errorPage('Expired', '"><img src=x onerror=alert(1)>')).not.toContain('<img');
  });
});
