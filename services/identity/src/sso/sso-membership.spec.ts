import { describe, expect, it } from '@jest/globals';

import { parseIssuer } from './sso-issuers.js';
import { isMember } from './sso-membership.js';

const rule = { emailDomains: ['acme.com'], requiredClaims: {} };

describe('membership by email domain', () => {
  it('takes a verified address in one of the domains, in any case', () => {
    expect(isMember({ email: 'Alice@ACME.com', email_verified: true }, rule)).toBe(true);
  });

  it.each([
    ['an unverified address', { email: 'alice@acme.com', email_verified: false }],
    ['a verified flag that is only truthy', { email: 'alice@acme.com', email_verified: 'true' }],
    ['another domain', { email: 'alice@acme.com.evil.example', email_verified: true }],
    ['a subdomain', { email: 'alice@eu.acme.com', email_verified: true }],
    ['no address', { email_verified: true }],
  ])('refuses %s', (_what, claims) => {
    expect(isMember(claims, rule)).toBe(false);
  });
});

describe('membership by required claims', () => {
  const groups = { emailDomains: [], requiredClaims: { groups: 'staff', tenant: 't1' } };

  it('needs every claim: a string equal, or an array containing the value', () => {
    expect(isMember({ groups: ['eng', 'staff'], tenant: 't1' }, groups)).toBe(true);
    expect(isMember({ groups: ['eng'], tenant: 't1' }, groups)).toBe(false);
    expect(isMember({ groups: ['staff'] }, groups)).toBe(false);
    expect(isMember({ groups: 'staff-not', tenant: 't1' }, groups)).toBe(false);
  });

  it('does not read inherited properties as claims', () => {
    expect(isMember({}, { emailDomains: [], requiredClaims: { constructor: 'x' } })).toBe(false);
  });

  it('with domains too, needs both', () => {
    const both = { emailDomains: ['acme.com'], requiredClaims: { groups: 'staff' } };
    expect(isMember({ email: 'a@acme.com', email_verified: true, groups: ['staff'] }, both)).toBe(true);
    expect(isMember({ email: 'a@acme.com', email_verified: true, groups: [] }, both)).toBe(false);
  });
});

describe('the issuer an admin gives', () => {
  it('must be https, or http on this machine only when allowed', () => {
    expect(parseIssuer('https://idp.example/tenant', false).href).toBe('https://idp.example/tenant');
    expect(parseIssuer('http://127.0.0.1:9000', true).host).toBe('127.0.0.1:9000');
    for (const [value, allow] of [
      ['http://127.0.0.1:9000', false],
      ['http://idp.example', true],
      ['https://user:pw@idp.example', false],
      ['https://idp.example/?tenant=1', false],
      ['https://idp.example/#x', false],
      ['idp.example', false],
    ] as const) {
      expect(() => parseIssuer(value, allow)).toThrow(expect.objectContaining({ code: 'sso_issuer_invalid' }));
    }
  });
});
