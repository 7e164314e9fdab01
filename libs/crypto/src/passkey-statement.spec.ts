import { approvalChallenge, grantChallenge, passkeyChallenge } from './passkey-statement.js';

const grant = {
  userId: '0190f5a4-0000-7000-8000-000000000001',
  orgId: '0190f5a4-0000-7000-8000-000000000002',
  applicationId: '0190f5a4-0000-7000-8000-000000000003',
  integration: 'github',
  scopes: ['github:read:repos', 'github:read:issues'],
  nonce: 'n-1',
  notAfter: new Date('2026-12-06T10:00:00Z'),
};

describe('grantChallenge', () => {
  it('is a 32-byte base64url hash that ignores the order of scopes', () => {
    const challenge = grantChallenge(grant);
    expect(Buffer.from(challenge, 'base64url')).toHaveLength(32);
    expect(grantChallenge({ ...grant, scopes: [...grant.scopes].reverse() })).toBe(challenge);
  });

  it('changes with every term of the grant', () => {
    const challenge = grantChallenge(grant);
    const variants = [
      { userId: '0190f5a4-0000-7000-8000-000000000009' },
      { orgId: '0190f5a4-0000-7000-8000-000000000009' },
      { applicationId: '0190f5a4-0000-7000-8000-000000000009' },
      { integration: 'gitlab' },
      { scopes: ['github:read:repos'] },
      { scopes: ['github:read:repos', 'github:read:issues', 'github:write:issues'] },
      { nonce: 'n-2' },
      { notAfter: new Date('2026-12-06T10:00:01Z') },
    ];
    for (const variant of variants) expect(grantChallenge({ ...grant, ...variant })).not.toBe(challenge);
  });

  it('cannot be confused by a scope that spells two', () => {
    expect(grantChallenge({ ...grant, scopes: ['a","b'] })).not.toBe(grantChallenge({ ...grant, scopes: ['a', 'b'] }));
  });
});

describe('passkeyChallenge', () => {
  const statement = {
    userId: grant.userId,
    credentialId: 'cred-1',
    publicKey: Buffer.from([1, 2, 3]),
    nonce: 'n-1',
    notAfter: grant.notAfter,
  };

  it('binds the new passkey and its key', () => {
    const challenge = passkeyChallenge(statement);
    expect(passkeyChallenge({ ...statement, credentialId: 'cred-2' })).not.toBe(challenge);
    expect(passkeyChallenge({ ...statement, publicKey: Buffer.from([1, 2, 4]) })).not.toBe(challenge);
    expect(passkeyChallenge({ ...statement, nonce: 'n-2' })).not.toBe(challenge);
  });
});

describe('approvalChallenge', () => {
  const approval = {
    userId: grant.userId,
    orgId: grant.orgId,
    applicationId: grant.applicationId,
    capability: 'github:delete_repo',
    method: 'tools/call',
    name: 'github.delete_repo',
    callHash: 'h-1',
    nonce: 'n-1',
    notAfter: grant.notAfter,
  };

  it('changes with every term of the call, and is no grant challenge', () => {
    const challenge = approvalChallenge(approval);
    expect(Buffer.from(challenge, 'base64url')).toHaveLength(32);
    for (const change of [
      { userId: 'other' },
      { orgId: 'other' },
      { applicationId: 'other' },
      { capability: 'github:create_issue' },
      { method: 'resources/read' },
      { name: 'github.tools' },
      { callHash: 'h-2' },
      { nonce: 'n-2' },
      { notAfter: new Date(grant.notAfter.getTime() + 1) },
    ])
      expect(approvalChallenge({ ...approval, ...change })).not.toBe(challenge);
    expect(grantChallenge({ ...grant, integration: approval.capability, scopes: [] })).not.toBe(challenge);
  });
});
