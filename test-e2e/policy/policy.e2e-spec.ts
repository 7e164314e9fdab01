import { randomUUID } from 'node:crypto';

import { timestampNow } from '@bufbuild/protobuf/wkt';
import { JetStreamPublisher, RpcClient } from '@context-gateway/messaging';
import { AuditAction, events, GrantStatus, PolicyEffect, rpc } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Browser } from 'playwright-core';

import { recentAuditEvents } from '../support/audit-stream.js';
import { addVirtualAuthenticator, browserUrl, launchBrowser } from '../support/browser.js';
import { type AdminClient, adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// The three policy layers through the public API, on the real stack: identity's
// application events and (as the broker would publish them) grant events feed policy's
// secure defaults; admins and users add rules; the app's explain is decided by the
// gateway's own cached PolicyDecider. And the consistency promise: once a change or a
// revocation has returned, no request that starts afterwards is allowed on the old rules.
let stack: TestStack;
let admin: AdminClient;
let nc: NatsConnection;
let publisher: JetStreamPublisher;
let org: { id: string };
let otherOrg: { id: string };
let app: { id: string };
let otherApp: { id: string };
let apiKey: string;
const user = randomUUID();
const grantId = randomUUID();

interface Explanation {
  allowed: boolean;
  decidedBy: 'org' | 'user' | 'application' | null;
  reason: string;
  matched: { layer: string; effect: string; ruleIds: string[] }[];
}

async function explain(
  body: Record<string, unknown>,
  key = apiKey,
): Promise<{ status: number; body: Explanation & { code?: string } }> {
  const res = await fetch(`${stack.gatewayUrl}/v1/policy/explain`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ applicationId: app.id, userId: user, ...body }),
  });
  return { status: res.status, body: (await res.json()) as Explanation & { code?: string } };
}

async function publishGrant(status: GrantStatus, revision: bigint, scopes: string[]): Promise<void> {
  await publisher.publish(events.grantChanged, {
    eventId: randomUUID(),
    grantId,
    orgId: org.id,
    applicationId: app.id,
    userId: user,
    connectionId: randomUUID(),
    integration: 'github',
    scopes,
    status,
    revision,
    occurredAt: timestampNow(),
  });
}

beforeAll(async () => {
  stack = await startTestStack('policy', { OPERATOR_TOKEN });
  admin = adminClient(stack.gatewayUrl);
  nc = await connect(stack.natsOptions());
  publisher = new JetStreamPublisher(nc);
  org = await admin.createOrganization('Acme policy');
  otherOrg = await admin.createOrganization('Other policy');
  app = await admin.createApplication(org.id, {
    name: 'agent',
    callbackUrls: ['https://agent.example/cb'],
    integrations: ['github'],
    scopes: ['github:read:repos', 'github:create_issue'],
  });
  otherApp = await admin.createApplication(otherOrg.id, {
    name: 'other',
    callbackUrls: ['https://other.example/cb'],
    integrations: ['github'],
    scopes: ['github:read:repos'],
  });
  apiKey = (await admin.issueApiKey(app.id)).secret;
  // The user consented to reading repositories only (the broker publishes this on consent).
  // An application may ask explanations about its grantees only.
  await publishGrant(GrantStatus.ACTIVE, 1n, ['github:read:repos']);
  // identity's ApplicationChanged and the grant reach policy asynchronously.
  await waitFor(
    'policy to know the application and its grantee',
    async () => (await explain({ capability: 'github:read:repos' })).status === 200,
    15_000,
  );
}, 180_000);

afterAll(async () => {
  await nc?.drain();
  await stack?.stop();
}, 60_000);

describe('three layers, deny overrides, explained', () => {
  it('denies by default at the org layer until the org enables the integration', async () => {
    const { status, body } = await explain({ capability: 'github:create_issue' });
    expect(status).toBe(200);
    expect(body).toMatchObject({ allowed: false, decidedBy: 'org', reason: 'no_allow' });
    // the application layer already allows it: its declaration is its default allow
    expect(body.matched).toContainEqual({
      layer: 'application',
      effect: 'allow',
      ruleIds: [`app:${app.id}:integration:github`, `app:${app.id}:capability:github:create_issue`],
    });
  });

  it('then denies at the user layer what the user did not consent to (a grant)', async () => {
    const set = await admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, {
      integrations: ['github'],
    });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ integrations: ['github'] });
    const { body } = await explain({ capability: 'github:create_issue' });
    expect(body).toMatchObject({ allowed: false, decidedBy: 'user', reason: 'no_allow' });
  });

  it('allows what all three layers allow, naming the rule of each', async () => {
    await publishGrant(GrantStatus.ACTIVE, 2n, ['github:create_issue', 'github:read:repos']);
    await waitFor(
      'the grant to be in force',
      async () => (await explain({ capability: 'github:create_issue' })).body.allowed,
      10_000,
    );
    const { body } = await explain({ capability: 'github:create_issue', resource: 'repo:acme/frontend' });
    expect(body).toEqual({
      allowed: true,
      decidedBy: null,
      reason: 'allowed',
      matched: [
        { layer: 'org', effect: 'allow', ruleIds: [`org:${org.id}:integration:github`] },
        { layer: 'user', effect: 'allow', ruleIds: [`grant:${grantId}:github:create_issue`] },
        {
          layer: 'application',
          effect: 'allow',
          ruleIds: [`app:${app.id}:integration:github`, `app:${app.id}:capability:github:create_issue`],
        },
      ],
    });
    // an unknown capability is denied whatever the rules say
    expect((await explain({ capability: 'github:launch_rockets' })).body).toMatchObject({
      allowed: false,
      reason: 'unknown_capability',
      decidedBy: null,
    });
  });

  it('an org deny on one resource overrides the allows, for that resource and for requests naming none', async () => {
    const put = await admin.call<{ rule: { id: string }; revision: number }>(
      'POST',
      `/v1/admin/organizations/${org.id}/policy/rules`,
      {
        effect: 'deny',
        capability: 'github:create_issue',
        resources: ['repo:acme/secret*'],
        description: 'no issues in secret repos',
      },
    );
    expect(put.status).toBe(201);
    const ruleId = put.body.rule.id;
    // the change is in the audit trail: who changed which org's policy, naming the rule
    const audited = (await recentAuditEvents(nc, 50)).find((e) => e.resource === `policy_rule:${ruleId}`);
    expect(audited).toMatchObject({
      action: AuditAction.POLICY_CHANGE,
      orgId: org.id,
      capability: 'github:create_issue',
    });
    expect(
      (await explain({ capability: 'github:create_issue', resource: 'repo:acme/secret-plans' })).body,
    ).toMatchObject({
      allowed: false,
      decidedBy: 'org',
      reason: 'deny_rule',
      matched: expect.arrayContaining([{ layer: 'org', effect: 'deny', ruleIds: [ruleId] }]),
    });
    expect((await explain({ capability: 'github:create_issue' })).body).toMatchObject({
      allowed: false,
      decidedBy: 'org',
      reason: 'deny_rule',
    });
    expect((await explain({ capability: 'github:create_issue', resource: 'repo:acme/frontend' })).body.allowed).toBe(
      true,
    );
    const listed = await admin.call<{ rules: { id: string; description?: string }[] }>(
      'GET',
      `/v1/admin/organizations/${org.id}/policy/rules`,
    );
    expect(listed.body.rules).toContainEqual(
      expect.objectContaining({ id: ruleId, layer: 'org', effect: 'deny', description: 'no issues in secret repos' }),
    );
    expect((await admin.call('DELETE', `/v1/admin/organizations/${org.id}/policy/rules/${ruleId}`)).status).toBe(200);
    expect((await explain({ capability: 'github:create_issue' })).body.allowed).toBe(true);
  });

  it('an application-layer deny decides at the application layer', async () => {
    const put = await admin.call<{ rule: { id: string } }>(
      'POST',
      `/v1/admin/organizations/${org.id}/applications/${app.id}/policy/rules`,
      { effect: 'deny', capability: 'github:read:repos' },
    );
    expect(put.status).toBe(201);
    expect((await explain({ capability: 'github:read:repos' })).body).toMatchObject({
      allowed: false,
      decidedBy: 'application',
      reason: 'deny_rule',
    });
    await admin.call('DELETE', `/v1/admin/organizations/${org.id}/policy/rules/${put.body.rule.id}`);
    // another org's app cannot be governed from this org
    expect(
      (
        await admin.call('POST', `/v1/admin/organizations/${org.id}/applications/${otherApp.id}/policy/rules`, {
          effect: 'allow',
          integration: 'github',
        })
      ).status,
    ).toBe(404);
  });

  it("a user's own rule: my apps may create issues but not delete repositories", async () => {
    const rpcClient = new RpcClient(nc);
    // the user API (/v1/me/policy/rules) sends exactly this for the signed-in user
    const put = await rpcClient.request(rpc.policy.putUserRule, {
      userId: user,
      rule: { effect: PolicyEffect.DENY, capability: 'github:delete_repository' },
    });
    expect(put.revisions.map((r) => r.orgId)).toEqual([org.id]);
    expect((await explain({ capability: 'github:create_issue' })).body.allowed).toBe(true);
    const denied = (await explain({ capability: 'github:delete_repository' })).body;
    expect(denied).toMatchObject({
      allowed: false,
      decidedBy: 'user',
      reason: 'deny_rule',
      matched: expect.arrayContaining([{ layer: 'user', effect: 'deny', ruleIds: [put.rule!.id] }]),
    });
  });

  it('explains for the operator the same way, and hides other orgs and other apps (404)', async () => {
    const asOperator = await admin.call<Explanation>('POST', '/v1/admin/policy/explain', {
      applicationId: app.id,
      userId: user,
      capability: 'github:create_issue',
    });
    expect(asOperator.status).toBe(200);
    expect(asOperator.body).toEqual((await explain({ capability: 'github:create_issue' })).body);
    const foreign = await explain({ applicationId: otherApp.id, capability: 'github:read:repos' });
    expect(foreign.status).toBe(404);
    expect(foreign.body.code).toBe('not_found');
    // A user who never granted this app anything: the app learns nothing about them; the operator may ask.
    const stranger = randomUUID();
    const hidden = await explain({ userId: stranger, capability: 'github:read:repos' });
    expect(hidden.status).toBe(404);
    expect(hidden.body.code).toBe('not_found');
    expect(
      (
        await admin.call('POST', '/v1/admin/policy/explain', {
          applicationId: app.id,
          userId: stranger,
          capability: 'github:read:repos',
        })
      ).status,
    ).toBe(200);
    const unauthenticated = await explain({ capability: 'github:read:repos' }, 'cg_sk_not-a-key');
    expect(unauthenticated.status).toBe(401);
  });
});

/**
 * Several clients ask continuously; meanwhile `change()` runs. Every request that started
 * after change() returned must be denied. Returns how many requests ran on each side.
 */
async function hammer(
  capability: string,
  change: () => Promise<void>,
): Promise<{ before: number; after: number; violations: number; allowedBefore: number }> {
  const CLIENTS = 8;
  let stop = false;
  let changedAt = Number.POSITIVE_INFINITY;
  const results: { startedAt: number; allowed: boolean }[] = [];
  const client = async () => {
    while (!stop) {
      const startedAt = performance.now();
      const { status, body } = await explain({ capability });
      if (status !== 200) throw new Error(`explain answered ${status} ${JSON.stringify(body)}`);
      results.push({ startedAt, allowed: body.allowed });
    }
  };
  const clients = Array.from({ length: CLIENTS }, client);
  await new Promise((r) => setTimeout(r, 400));
  await change();
  changedAt = performance.now();
  await new Promise((r) => setTimeout(r, 1_500));
  stop = true;
  await Promise.all(clients);
  const after = results.filter((r) => r.startedAt > changedAt);
  const before = results.filter((r) => r.startedAt <= changedAt);
  return {
    before: before.length,
    after: after.length,
    violations: after.filter((r) => r.allowed).length,
    allowedBefore: before.filter((r) => r.allowed).length,
  };
}

describe('a change is in force for every request that starts after it returned', () => {
  it('an org deny added under concurrent load: zero allowed afterwards', async () => {
    expect((await explain({ capability: 'github:read:repos' })).body.allowed).toBe(true);
    const result = await hammer('github:read:repos', async () => {
      const put = await admin.call('POST', `/v1/admin/organizations/${org.id}/policy/rules`, {
        effect: 'deny',
        capability: 'github:read:repos',
      });
      expect(put.status).toBe(201);
    });
    expect(result.allowedBefore).toBeGreaterThan(0);
    expect(result.after).toBeGreaterThan(20);
    expect(result.violations).toBe(0);
  }, 30_000);

  it('a grant revocation under concurrent load: zero allowed afterwards', async () => {
    expect((await explain({ capability: 'github:create_issue' })).body.allowed).toBe(true);
    const result = await hammer('github:create_issue', () =>
      publishGrant(GrantStatus.REVOKED, 3n, ['github:create_issue', 'github:read:repos']),
    );
    expect(result.allowedBefore).toBeGreaterThan(0);
    expect(result.after).toBeGreaterThan(20);
    expect(result.violations).toBe(0);
    expect((await explain({ capability: 'github:create_issue' })).body).toMatchObject({
      allowed: false,
      decidedBy: 'user',
      reason: 'no_allow',
    });
    // a replayed (older) grant event changes nothing: revocation stays in force
    await publishGrant(GrantStatus.ACTIVE, 1n, ['github:create_issue']).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    expect((await explain({ capability: 'github:create_issue' })).body.allowed).toBe(false);
  }, 30_000);
});

describe("the user API: a signed-in person's own rules", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  /** A person with a passkey account; returns their user id and session cookie. */
  async function signedInPerson(name: string): Promise<{ userId: string; cookie: string }> {
    const base = browserUrl(stack.gatewayUrl);
    const context = await browser.newContext();
    const page = await context.newPage();
    await addVirtualAuthenticator(context, page);
    await page.goto(`${base}/v1/auth/signin?return_to=${encodeURIComponent('/v1/auth/session')}`);
    await page.fill('#display-name', name);
    await Promise.all([page.waitForURL(`${base}/v1/auth/session`), page.click('#create-account')]);
    const session = (await (await page.request.get(`${base}/v1/auth/session`)).json()) as { userId: string };
    const cookie = (await context.cookies(base)).find((c) => c.name === '__Host-cg_session')!;
    await context.close();
    return { userId: session.userId, cookie: `__Host-cg_session=${cookie.value}` };
  }

  const me = async (cookie: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${stack.gatewayUrl}${path}`, {
      method,
      headers: { cookie, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    // What the tests read of /v1/me/policy answers: a rule with the revisions it made, or the list.
    return {
      status: res.status,
      body: (await res.json()) as { rule: { id: string }; revisions: unknown[]; rules: unknown[] },
    };
  };

  it('"my apps may create issues but not delete repositories", in force for the app acting for me', async () => {
    const ada = await signedInPerson('Ada');
    const bob = await signedInPerson('Bob');
    // Ada consents to the app (the broker would publish this when she connects)
    await publisher.publish(events.grantChanged, {
      eventId: randomUUID(),
      grantId: randomUUID(),
      orgId: org.id,
      applicationId: app.id,
      userId: ada.userId,
      connectionId: randomUUID(),
      integration: 'github',
      scopes: ['github:create_issue', 'github:delete_repository'],
      status: GrantStatus.ACTIVE,
      revision: 1n,
      occurredAt: timestampNow(),
    });
    await waitFor(
      "Ada's grant",
      async () => (await explain({ userId: ada.userId, capability: 'github:create_issue' })).body.allowed,
      10_000,
    );
    const put = await me(ada.cookie, 'POST', '/v1/me/policy/rules', {
      effect: 'deny',
      capability: 'github:delete_repository',
      description: 'never delete my repos',
    });
    expect(put.status).toBe(201);
    expect(put.body.rule).toMatchObject({
      layer: 'user',
      subject: ada.userId,
      effect: 'deny',
      capability: 'github:delete_repository',
    });
    expect(put.body.revisions).toEqual([{ orgId: org.id, revision: expect.any(Number) }]);
    // explain checks the org integrations too: enable nothing new, github is on
    expect((await explain({ userId: ada.userId, capability: 'github:create_issue' })).body.allowed).toBe(true);
    expect((await explain({ userId: ada.userId, capability: 'github:delete_repository' })).body).toMatchObject({
      allowed: false,
      decidedBy: 'user',
      reason: 'deny_rule',
      matched: expect.arrayContaining([{ layer: 'user', effect: 'deny', ruleIds: [put.body.rule.id] }]),
    });
    const listed = await me(ada.cookie, 'GET', '/v1/me/policy/rules');
    expect(listed.body.rules).toEqual([
      expect.objectContaining({ id: put.body.rule.id, description: 'never delete my repos' }),
    ]);
    // Bob neither sees nor deletes Ada's rule
    expect((await me(bob.cookie, 'GET', '/v1/me/policy/rules')).body.rules).toEqual([]);
    expect((await me(bob.cookie, 'DELETE', `/v1/me/policy/rules/${put.body.rule.id}`)).status).toBe(404);
    expect((await me('__Host-cg_session=cg_ss_forged', 'GET', '/v1/me/policy/rules')).status).toBe(401);
    // Ada deletes it: the grant's allow is back in force
    expect((await me(ada.cookie, 'DELETE', `/v1/me/policy/rules/${put.body.rule.id}`)).status).toBe(200);
    expect((await explain({ userId: ada.userId, capability: 'github:delete_repository' })).body.allowed).toBe(true);
  }, 60_000);
});
