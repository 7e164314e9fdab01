import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { fromBinary } from '@bufbuild/protobuf';
import { ApplicationChangedSchema, events } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { type AdminClient, adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { rootDir, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// The operator bootstraps tenants through the admin API; applications then authenticate
// with their API keys, see only their own organization, and lose access the moment a key
// is revoked.
let stack: TestStack;
let admin: AdminClient;
// Each test is a handful of HTTP calls; on a loaded 2-core machine they can take seconds.
jest.setTimeout(30_000);

beforeAll(async () => {
  stack = await startTestStack('identity-admin', { OPERATOR_TOKEN });
  admin = adminClient(stack.gatewayUrl);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const asApp = (key: string, path: string) =>
  fetch(`${stack.gatewayUrl}${path}`, { headers: { authorization: `Bearer ${key}` } });

describe('the admin API', () => {
  it('refuses requests without the operator token, or with a wrong one', async () => {
    const none = await fetch(`${stack.gatewayUrl}/v1/admin/organizations`);
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await none.json()).toMatchObject({ code: 'unauthenticated' });
    const wrong = await adminClient(stack.gatewayUrl, `${OPERATOR_TOKEN}x`).call('GET', '/v1/admin/organizations');
    expect(wrong).toMatchObject({ status: 401, body: { code: 'unauthenticated' } });
    // an API key is not an operator token
    const org = await admin.createOrganization('Key Is Not Operator');
    const app = await admin.createApplication(org.id, { name: 'a', callbackUrls: ['https://a.example/cb'] });
    const key = await admin.issueApiKey(app.id);
    expect((await adminClient(stack.gatewayUrl, key.secret).call('GET', '/v1/admin/organizations')).status).toBe(401);
  });

  it('creates an organization, an application and an API key shown once', async () => {
    const org = await admin.createOrganization('Acme Corp.');
    expect(org).toMatchObject({ name: 'Acme Corp.', slug: 'acme-corp' });
    const app = await admin.createApplication(org.id, {
      name: 'Acme Music',
      callbackUrls: ['https://music.acme.example/connect/done', 'http://localhost:3000/cb'],
      integrations: ['spotify', 'github'],
      scopes: ['spotify:read:playlists', 'github:read:repos'],
    });
    expect(app).toMatchObject({
      orgId: org.id,
      name: 'Acme Music',
      status: 'active',
      callbackUrls: ['https://music.acme.example/connect/done', 'http://localhost:3000/cb'],
    });
    expect(app.clientId).toMatch(/^cg_app_[A-Za-z0-9_-]{22}$/);

    const key = await admin.issueApiKey(app.id);
    expect(key.secret).toMatch(/^cg_sk_[A-Za-z0-9_-]{43}$/);
    expect(key.secret.startsWith(key.prefix)).toBe(true);
    const listed = await admin.call<{ apiKeys: Record<string, unknown>[] }>(
      'GET',
      `/v1/admin/applications/${app.id}/api-keys`,
    );
    expect(listed.body.apiKeys).toEqual([expect.objectContaining({ id: key.id, prefix: key.prefix, revokedAt: null })]);
    expect(JSON.stringify(listed.body)).not.toContain(key.secret);

    const apps = await admin.call<{ applications: { id: string }[] }>(
      'GET',
      `/v1/admin/organizations/${org.id}/applications`,
    );
    expect(apps.body.applications.map((a) => a.id)).toEqual([app.id]);
  });

  it('rejects unknown fields, bad callback URLs and scopes of undeclared integrations', async () => {
    expect(await admin.call('POST', '/v1/admin/organizations', { name: 'x', plan: 'gold' })).toMatchObject({
      status: 422,
      body: { code: 'unknown_field', errors: [{ path: 'plan' }] },
    });
    const org = await admin.createOrganization('Validation Org');
    const bad = await admin.call('POST', `/v1/admin/organizations/${org.id}/applications`, {
      name: 'bad',
      callbackUrls: ['http://evil.example/cb', 'https://ok.example/cb#x'],
      integrations: ['github'],
      scopes: ['spotify:read:playlists'],
    });
    expect(bad).toMatchObject({ status: 422, body: { code: 'validation_failed' } });
    expect((bad.body as { errors: { path: string }[] }).errors.map((e) => e.path).sort()).toEqual([
      'callbackUrls.0',
      'callbackUrls.1',
      'scopes.0',
    ]);
    expect(
      (
        await admin.call('POST', `/v1/admin/organizations/00000000-0000-4000-8000-000000000000/applications`, {
          name: 'x',
          callbackUrls: ['https://a.example/cb'],
        })
      ).status,
    ).toBe(404);
  });

  it('publishes application_changed on the CONTROL stream when an application is created', async () => {
    const nc: NatsConnection = await connect(stack.natsOptions());
    try {
      const seen: ReturnType<typeof fromBinary<typeof ApplicationChangedSchema>>[] = [];
      const sub = nc.subscribe(events.applicationChanged.subject, {
        callback: (_err, msg) => void seen.push(fromBinary(ApplicationChangedSchema, msg.data)),
      });
      await nc.flush();
      const org = await admin.createOrganization('Events Org');
      const app = await admin.createApplication(org.id, {
        name: 'ev',
        callbackUrls: ['https://ev.example/cb'],
        integrations: ['github'],
        scopes: ['github:read:repos'],
      });
      const event = await waitFor(
        'application_changed',
        () => Promise.resolve(seen.find((e) => e.applicationId === app.id)),
        10_000,
      );
      expect(event).toMatchObject({
        orgId: org.id,
        applicationId: app.id,
        integrations: ['github'],
        scopes: ['github:read:repos'],
        active: true,
        revision: 1n,
      });
      sub.unsubscribe();
    } finally {
      await nc.drain();
    }
  });
});

describe('changing an application', () => {
  it('replaces its declarations and publishes the next revision', async () => {
    const nc: NatsConnection = await connect(stack.natsOptions());
    try {
      const seen: ReturnType<typeof fromBinary<typeof ApplicationChangedSchema>>[] = [];
      const sub = nc.subscribe(events.applicationChanged.subject, {
        callback: (_err, msg) => void seen.push(fromBinary(ApplicationChangedSchema, msg.data)),
      });
      await nc.flush();
      const org = await admin.createOrganization('Update Org');
      const app = await admin.createApplication(org.id, {
        name: 'up',
        callbackUrls: ['https://up.example/cb'],
        integrations: ['github'],
        scopes: ['github:read:repos'],
      });
      const updated = await admin.updateApplication(org.id, app.id, {
        integrations: ['github', 'spotify'],
        scopes: ['github:read:repos', 'spotify:read:playlists'],
      });
      expect(updated).toMatchObject({
        integrations: ['github', 'spotify'],
        scopes: ['github:read:repos', 'spotify:read:playlists'],
        callbackUrls: ['https://up.example/cb'],
      });
      const event = await waitFor(
        'revision 2',
        () => Promise.resolve(seen.find((e) => e.applicationId === app.id && e.revision === 2n)),
        10_000,
      );
      expect(event).toMatchObject({ scopes: ['github:read:repos', 'spotify:read:playlists'], active: true });
      sub.unsubscribe();
      // the whole declaration is re-checked: dropping an integration its scopes need is refused
      expect(
        await admin.call('PATCH', `/v1/admin/organizations/${org.id}/applications/${app.id}`, {
          integrations: ['github'],
        }),
      ).toMatchObject({ status: 422, body: { code: 'validation_failed' } });
      expect(await admin.call('PATCH', `/v1/admin/organizations/${org.id}/applications/${app.id}`, {})).toMatchObject({
        status: 422,
      });
      // another org's id for the same application: not found
      const other = await admin.createOrganization('Update Other Org');
      expect(
        (await admin.call('PATCH', `/v1/admin/organizations/${other.id}/applications/${app.id}`, { name: 'stolen' }))
          .status,
      ).toBe(404);
    } finally {
      await nc.drain();
    }
  });

  it('disabling it stops its keys on the next request; enabling it brings them back', async () => {
    const org = await admin.createOrganization('Disable Org');
    const app = await admin.createApplication(org.id, { name: 'dis', callbackUrls: ['https://dis.example/cb'] });
    const key = await admin.issueApiKey(app.id);
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(200);
    expect(await admin.updateApplication(org.id, app.id, { status: 'disabled' })).toMatchObject({ status: 'disabled' });
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(401);
    await admin.updateApplication(org.id, app.id, { status: 'active' });
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(200);
  });
});

describe('API keys', () => {
  it("let an application read its own organization only: another org's application is 404", async () => {
    const orgA = await admin.createOrganization('Tenant A');
    const orgB = await admin.createOrganization('Tenant B');
    const appA = await admin.createApplication(orgA.id, { name: 'A app', callbackUrls: ['https://a.example/cb'] });
    const appA2 = await admin.createApplication(orgA.id, {
      name: 'A second app',
      callbackUrls: ['https://a2.example/cb'],
    });
    const appB = await admin.createApplication(orgB.id, { name: 'B app', callbackUrls: ['https://b.example/cb'] });
    const keyA = await admin.issueApiKey(appA.id);

    const own = await asApp(keyA.secret, `/v1/applications/${appA.id}`);
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ id: appA.id, name: 'A app' });
    expect((await asApp(keyA.secret, `/v1/applications/${appA2.id}`)).status).toBe(200);

    const other = await asApp(keyA.secret, `/v1/applications/${appB.id}`);
    expect(other.status).toBe(404);
    const missing = await asApp(keyA.secret, `/v1/applications/00000000-0000-4000-8000-000000000000`);
    expect(missing.status).toBe(404);
    // indistinguishable: the same code for "another org's" and "no such"
    expect(((await other.json()) as { code: string }).code).toBe(((await missing.json()) as { code: string }).code);
  });

  it('fail on the very next request once revoked', async () => {
    const org = await admin.createOrganization('Revocation Org');
    const app = await admin.createApplication(org.id, { name: 'r', callbackUrls: ['https://r.example/cb'] });
    const key = await admin.issueApiKey(app.id);
    const other = await admin.issueApiKey(app.id);
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(200);

    const revoked = await admin.revokeApiKey(app.id, key.id);
    expect(revoked.revokedAt).not.toBeNull();
    const after = await asApp(key.secret, `/v1/applications/${app.id}`);
    expect(after.status).toBe(401);
    expect(await after.json()).toMatchObject({ code: 'unauthenticated' });
    // the application's other key is untouched
    expect((await asApp(other.secret, `/v1/applications/${app.id}`)).status).toBe(200);
  });

  it('under concurrent load, no request that started after the revoke returned is allowed', async () => {
    const org = await admin.createOrganization('Revocation Load Org');
    const app = await admin.createApplication(org.id, { name: 'rl', callbackUrls: ['https://rl.example/cb'] });
    const key = await admin.issueApiKey(app.id);
    // The gateway remembers the key now (auth/api-key-cache.ts): revocation must still win.
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(200);
    const results: { startedAt: number; status: number }[] = [];
    let returnedAt = Number.POSITIVE_INFINITY;
    // Each worker stops after its first request that started after the revoke returned: the
    // refusals count as failed authentications from this address (AUTH_FAILURES_PER_IP).
    const worker = async () => {
      for (;;) {
        const startedAt = performance.now();
        const res = await asApp(key.secret, `/v1/applications/${app.id}`);
        await res.arrayBuffer();
        results.push({ startedAt, status: res.status });
        if (startedAt > returnedAt) return;
      }
    };
    const workers = Array.from({ length: 8 }, () => worker());
    await new Promise((resolve) => setTimeout(resolve, 300));
    await admin.revokeApiKey(app.id, key.id);
    returnedAt = performance.now();
    await Promise.all(workers);
    const after = results.filter((r) => r.startedAt > returnedAt);
    expect(results.filter((r) => r.startedAt < returnedAt && r.status === 200).length).toBeGreaterThan(0);
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((r) => r.status !== 401)).toEqual([]);
  });

  it('a disabled application loses its remembered keys on the very next request', async () => {
    const org = await admin.createOrganization('Disable Cache Org');
    const app = await admin.createApplication(org.id, { name: 'dc', callbackUrls: ['https://dc.example/cb'] });
    const key = await admin.issueApiKey(app.id);
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(200);
    await admin.updateApplication(org.id, app.id, { status: 'disabled' });
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(401);
    await admin.updateApplication(org.id, app.id, { status: 'active' });
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(200);
  });

  it('records when a key was last used', async () => {
    const org = await admin.createOrganization('Last Used Org');
    const app = await admin.createApplication(org.id, { name: 'lu', callbackUrls: ['https://lu.example/cb'] });
    const key = await admin.issueApiKey(app.id);
    expect((await asApp(key.secret, `/v1/applications/${app.id}`)).status).toBe(200);
    const lastUsed = await waitFor(
      'last_used_at',
      async () => {
        const { body } = await admin.call<{ apiKeys: { lastUsedAt: string | null }[] }>(
          'GET',
          `/v1/admin/applications/${app.id}/api-keys`,
        );
        return body.apiKeys[0]?.lastUsedAt ?? undefined;
      },
      5_000,
    );
    expect(Math.abs(Date.parse(lastUsed) - Date.now())).toBeLessThan(60_000);
  });

  it('refuses malformed, unknown and missing keys alike', async () => {
    const org = await admin.createOrganization('Bad Keys Org');
    const app = await admin.createApplication(org.id, { name: 'bk', callbackUrls: ['https://bk.example/cb'] });
    for (const header of [
      undefined,
      'Bearer cg_sk_short',
      `Bearer cg_sk_${'A'.repeat(43)}`,
      'Basic abc',
      `Bearer ${OPERATOR_TOKEN}`,
    ]) {
      const res = await fetch(`${stack.gatewayUrl}/v1/applications/${app.id}`, {
        headers: header ? { authorization: header } : {},
      });
      expect({ header, status: res.status }).toEqual({ header, status: 401 });
    }
  });
});

describe('the CLI (pnpm cg)', () => {
  const cg = async (...args: string[]) => {
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [join(rootDir, 'tools/cli/cg.mjs'), ...args], {
        env: { ...process.env, GATEWAY_URL: stack.gatewayUrl, OPERATOR_TOKEN },
      });
      return { code: 0, json: JSON.parse(stdout) as Record<string, string> };
    } catch (error) {
      const e = error as { code: number; stderr: string };
      return { code: e.code, json: JSON.parse(e.stderr) as Record<string, string> };
    }
  };

  it('creates an org, an app and a key, and revokes the key, printing JSON', async () => {
    const org = await cg('org', 'create', '--name', 'CLI Org');
    expect(org).toMatchObject({ code: 0, json: { name: 'CLI Org', slug: 'cli-org' } });
    const app = await cg(
      'app',
      'create',
      '--org',
      org.json.id!,
      '--name',
      'CLI App',
      '--callback-url',
      'https://cli.example/cb',
      '--integration',
      'github',
      '--scope',
      'github:read:repos',
    );
    expect(app).toMatchObject({
      code: 0,
      json: {
        orgId: org.json.id,
        name: 'CLI App',
        integrations: ['github'],
        scopes: ['github:read:repos'],
        callbackUrls: ['https://cli.example/cb'],
      },
    });
    const key = await cg('key', 'issue', '--app', app.json.id!);
    expect(key.code).toBe(0);
    expect(key.json.secret).toMatch(/^cg_sk_/);
    expect((await asApp(key.json.secret!, `/v1/applications/${app.json.id}`)).status).toBe(200);

    const revoked = await cg('key', 'revoke', '--app', app.json.id!, '--key', key.json.id!);
    expect(revoked.code).toBe(0);
    expect(revoked.json.revokedAt).toEqual(expect.any(String));
    expect((await asApp(key.json.secret!, `/v1/applications/${app.json.id}`)).status).toBe(401);
  });

  it('prints the problem and exits 1 when the gateway refuses', async () => {
    const changed = await cg(
      'app',
      'update',
      '--org',
      (await admin.createOrganization('CLI Update Org')).id,
      '--app',
      '00000000-0000-4000-8000-000000000000',
      '--status',
      'disabled',
    );
    expect(changed).toMatchObject({ code: 1, json: { code: 'not_found' } });
    const refused = await cg(
      'app',
      'create',
      '--org',
      '00000000-0000-4000-8000-000000000000',
      '--name',
      'x',
      '--callback-url',
      'https://x.example/cb',
    );
    expect(refused).toMatchObject({ code: 1, json: { status: 404, code: 'not_found' } });
  });
});

describe('what the gateway publishes and logs', () => {
  it('documents the admin and application routes with their security schemes in OpenAPI', async () => {
    const doc = (await (await fetch(`${stack.gatewayUrl}/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { security: unknown[] }>>;
    };
    expect(doc.paths['/v1/admin/organizations']?.post?.security).toEqual([{ operatorToken: [] }]);
    expect(doc.paths['/v1/admin/applications/{applicationId}/api-keys/{keyId}']?.delete?.security).toEqual([
      { operatorToken: [] },
    ]);
    expect(doc.paths['/v1/applications/{applicationId}']?.get?.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths['/v1/auth/session']?.get?.security).toEqual([{ userSession: [] }]);
  });

  it('never logs an API key or the operator token', async () => {
    const org = await admin.createOrganization('Log Check Org');
    const app = await admin.createApplication(org.id, { name: 'logs', callbackUrls: ['https://logs.example/cb'] });
    const key = await admin.issueApiKey(app.id);
    await asApp(key.secret, `/v1/applications/${app.id}`);
    await asApp(`${key.secret.slice(0, -1)}x`, `/v1/applications/${app.id}`);
    await new Promise((r) => setTimeout(r, 500));
    const text = stack.logs.map((l) => l.raw).join('\n');
    expect(text).not.toMatch(/cg_sk_[A-Za-z0-9_-]{20}/);
    expect(text).not.toContain(OPERATOR_TOKEN);
  });
});
