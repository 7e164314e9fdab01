import { randomUUID } from 'node:crypto';

import { RpcClient } from '@context-gateway/messaging';
import { ContextGateway, GatewayError } from '@context-gateway/node';
import { AuditAction, AuditOutcome, AuditPhase } from '@context-gateway/proto';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { recentAuditEvents } from '../support/audit-stream.js';
import { type AdminClient, adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { connectSourceAccount, newPerson, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// Credential-only mode through the public surface: an app backend asks the gateway for a
// person's GitHub token (the GitHub simulator's OAuth, tokens that expire), calls GitHub with
// it itself, is refused by policy, and is sent to the connect flow for a person who has no
// connection. The broker refreshes whenever a token is within TOKEN_REFRESH_SKEW_SECONDS of
// expiry: with the skew above the tokens' lifetime, every credential handed out is a fresh one.
const CLIENT_ID = 'cg-e2e-cred-github';
const CLIENT_SECRET = 'cg-e2e-cred-github-secret-0123456789';
const CALLBACK = 'http://127.0.0.1:9/cred-callback';
const SCOPES = ['github:read:profile', 'github:read:repos'];
const TOKEN_TTL_SECONDS = 900;

let stack: TestStack;
let sim: RunningSimulator;
let nc: NatsConnection;
let admin: AdminClient;
let app: { orgId: string; appId: string; name: string; callbackUrl: string };
let apiKey: string;
let client: ContextGateway;

async function credentials(body: unknown, key = apiKey) {
  const res = await fetch(`${stack.gatewayUrl}/v1/credentials`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github', accessTokenTtlSeconds: TOKEN_TTL_SECONDS });
  stack = await startTestStack('credentials', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    TOKEN_REFRESH_SKEW_SECONDS: '3600',
    SYNC_INTERVAL_MS: '3600000',
  });
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  await sim.control.createAccount({ login: 'octo-cred', counts: { repos: 2, starred: 0, issues: 0 } });
  admin = adminClient(stack.gatewayUrl);
  const org = await admin.createOrganization('Credentials Org');
  await admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['github'] });
  const created = await admin.createApplication(org.id, {
    name: 'Cred App',
    callbackUrls: [CALLBACK],
    integrations: ['github'],
    scopes: SCOPES,
  });
  apiKey = (await admin.issueApiKey(created.id)).secret;
  client = new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey });
  app = { orgId: org.id, appId: created.id, name: created.name, callbackUrl: CALLBACK };
  nc = await connect(stack.natsOptions());
  const broker = new RpcClient(nc);
  await waitForBrokerToKnowApp(broker, app, 'github', SCOPES);
}, 180_000);

afterAll(async () => {
  await nc?.close();
  await stack?.stop();
  await sim?.stop();
}, 60_000);

describe('credential-only mode (POST /v1/credentials)', () => {
  let userId: string;

  it('sends a person without a connection to the connect flow (connection_required with a connect link)', async () => {
    const res = await credentials({ integration: 'github', userId: randomUUID() });
    expect(res).toMatchObject({ status: 409, body: { code: 'connection_required' } });
    const link = new URL(res.body.connectUrl as string);
    expect(link.pathname).toMatch(/^\/v1\/connect\/[A-Za-z0-9_-]{43}$/);
    const page = await fetch(new URL(link.pathname, stack.gatewayUrl));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Cred App');
  });

  it("hands out the person's short-lived GitHub token (never the refresh token), refreshed first when close to expiry", async () => {
    ({ userId } = await connectSourceAccount(
      new RpcClient(nc),
      app,
      'github',
      SCOPES,
      'octo-cred',
      await newPerson(stack.gatewayUrl),
    ));
    const first = await waitFor('policy to know the grant', async () => {
      const res = await credentials({ integration: 'github', userId });
      return res.status === 200 ? res.body : undefined;
    });
    expect(Object.keys(first).sort()).toEqual(
      ['accessToken', 'apiBaseUrl', 'connectionId', 'expiresAt', 'integration', 'tokenType'].sort(),
    );
    const expiresIn = Date.parse(first.expiresAt as string) - Date.now();
    expect(expiresIn).toBeGreaterThan((TOKEN_TTL_SECONDS - 120) * 1000);
    expect(expiresIn).toBeLessThanOrEqual(TOKEN_TTL_SECONDS * 1000);
    const user = await fetch(`${first.apiBaseUrl as string}/user`, {
      headers: { authorization: `Bearer ${first.accessToken as string}` },
    });
    expect({ status: user.status, apiBaseUrl: first.apiBaseUrl }).toEqual({ status: 200, apiBaseUrl: sim.url });
    expect(((await user.json()) as { login: string }).login).toBe('octo-cred');

    // Within the skew of expiry: the broker refreshes before answering; the SDK gets the new token.
    const refreshedBefore = (await sim.control.counters()).tokensRefreshed;
    const second = await client.credentials.issue({ integration: 'github', userId });
    expect(second.accessToken).not.toBe(first.accessToken);
    expect((await sim.control.counters()).tokensRefreshed).toBeGreaterThan(refreshedBefore);
    const again = await fetch(`${second.apiBaseUrl}/user`, {
      headers: { authorization: `Bearer ${second.accessToken}` },
    });
    expect(again.status).toBe(200);

    // Intent before, outcome after; the token itself is nowhere in the trail.
    // (The intent is written before the person is known to belong to this app: it names the org and app only.)
    const events = (await recentAuditEvents(nc, 40)).filter(
      (e) => e.action === AuditAction.CREDENTIAL_ISSUED && e.orgId === app.orgId,
    );
    const outcome = events.find((e) => e.phase === AuditPhase.OUTCOME && e.userId === userId);
    expect(outcome).toMatchObject({
      outcome: AuditOutcome.ALLOWED,
      integration: 'github',
      connectionId: first.connectionId,
    });
    expect(events.find((e) => e.eventId === outcome?.intentEventId)).toMatchObject({ phase: AuditPhase.INTENT });
    expect(JSON.stringify(events, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(
      second.accessToken,
    );
  }, 90_000);

  it('needs a person: refuses an application that names nobody', async () => {
    expect(await credentials({ integration: 'github' })).toMatchObject({
      status: 422,
      body: { code: 'validation_failed' },
    });
  });

  it("refuses while a rule asks for the person's approval of each call: a raw token would skip it", async () => {
    const rule = await admin.call<{ rule: { id: string } }>(
      'POST',
      `/v1/admin/organizations/${app.orgId}/policy/rules`,
      { effect: 'allow', capability: 'github:read:repos', approvalRequired: true },
    );
    expect(rule.status).toBe(201);
    const refused = await client.credentials.issue({ integration: 'github', userId }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'approval_required', status: 403 });
    const held = (await recentAuditEvents(nc, 10)).find(
      (e) => e.action === AuditAction.CREDENTIAL_ISSUED && e.phase === AuditPhase.OUTCOME,
    );
    expect(held).toMatchObject({ outcome: AuditOutcome.DENIED, errorCode: 'approval_required' });
    // Without the rule the credential is handed out again.
    await admin.call('DELETE', `/v1/admin/organizations/${app.orgId}/policy/rules/${rule.body.rule.id}`);
    await waitFor(
      'the credential',
      async () => (await credentials({ integration: 'github', userId })).status === 200 || undefined,
    );
  });

  it('refuses once policy denies a capability the token would carry, naming the deciding layer', async () => {
    const rule = await admin.call<{ rule: { id: string } }>(
      'POST',
      `/v1/admin/organizations/${app.orgId}/applications/${app.appId}/policy/rules`,
      { effect: 'deny', capability: 'github:read:repos', description: 'no raw GitHub tokens for this app' },
    );
    expect(rule.status).toBe(201);
    const refused = await client.credentials.issue({ integration: 'github', userId }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GatewayError);
    expect(refused).toMatchObject({ code: 'policy_denied', status: 403 });
    expect((refused as GatewayError).detail).toContain('application layer');
    const denied = (await recentAuditEvents(nc, 10)).find(
      (e) => e.action === AuditAction.CREDENTIAL_ISSUED && e.phase === AuditPhase.OUTCOME,
    );
    expect(denied).toMatchObject({ outcome: AuditOutcome.DENIED, errorCode: 'policy_denied' });
  });
});
