import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { RpcClient } from '@context-gateway/messaging';
import { ConnectionStatus, rpc } from '@context-gateway/proto';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import axe from 'axe-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import {
  addVirtualAuthenticator,
  browserPerson,
  browserUrl,
  createAccountOnSigninPage,
  launchBrowser,
  sessionCookie,
  signInOnSigninPage,
  type VirtualAuthenticator,
} from '../support/browser.js';
import { allowConnectSession } from '../support/connect-account.mjs';
import { type AdminClient, adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { connectSourceAccount, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { rootDir, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// The person's portal as a person uses it: a browser with a passkey (virtual authenticator)
// signs in at /account, sees their connection with each application named and its scopes in
// words, revokes one application (whose very next query fails), is asked to confirm with the
// passkey when the session is old, deletes the connection after a warning, and reads the
// access log. Every page is checked with axe-core and kept as a screenshot (test-results/portal).
const CLIENT_ID = 'cg-e2e-portal';
const CLIENT_SECRET = 'cg-e2e-portal-secret-0123456789';
/** The broker's step-up window, short here so that "an old session" takes seconds. */
const STEP_UP_MS = 15_000;
const SHOTS = join(rootDir, 'test-results', 'portal');

let stack: TestStack;
let demo: RunningSimulator;
let admin: AdminClient;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let authenticator: VirtualAuthenticator;
let base: string;
let nc: NatsConnection;
let client: RpcClient;

interface App {
  orgId: string;
  appId: string;
  name: string;
  callbackUrl: string;
  key: string;
}
let digest: App;
let planner: App;

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  demo = await startSimulator({ provider: 'demo' });
  stack = await startTestStack('portal', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_DEMO_BASE_URL: demo.url,
    INTEGRATION_DEMO_CLIENT_ID: CLIENT_ID,
    INTEGRATION_DEMO_CLIENT_SECRET: CLIENT_SECRET,
    PERSON_STEP_UP_MAX_AGE_MS: String(STEP_UP_MS),
  });
  base = browserUrl(stack.gatewayUrl);
  await demo.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`${base}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  admin = adminClient(stack.gatewayUrl);
  const org = await admin.createOrganization('Portal Org');
  expect(
    (await admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['demo'] }))
      .status,
  ).toBe(200);
  const newApp = async (name: string): Promise<App> => {
    const callbackUrl = 'https://app.example/callback';
    const app = await admin.createApplication(org.id, {
      name,
      callbackUrls: [callbackUrl],
      integrations: ['demo'],
      scopes: ['demo:read:notes', 'demo:read:profile'],
    });
    return { orgId: org.id, appId: app.id, name, callbackUrl, key: (await admin.issueApiKey(app.id)).secret };
  };
  digest = await newApp('Notes Digest <b>');
  planner = await newApp('Weekly Planner');
  nc = await connect(stack.natsOptions());
  client = new RpcClient(nc);
  await waitForBrokerToKnowApp(client, digest, 'demo', ['demo:read:notes']);
  await waitForBrokerToKnowApp(client, planner, 'demo', ['demo:read:notes']);
  browser = await launchBrowser();
  context = await browser.newContext();
  page = await context.newPage();
  authenticator = await addVirtualAuthenticator(context, page);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await nc?.drain();
  await stack?.stop();
  await demo?.stop();
}, 60_000);

/** axe-core on the page as it is: no serious or critical violation; and a screenshot kept. */
async function checkPage(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  // Evaluated by the DevTools protocol: the page's own CSP (no script at all) stays as served.
  await page.evaluate(axe.source);
  const violations = await page.evaluate<{ id: string; impact: string }[]>(
    'axe.run(document).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact })))',
  );
  expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')).toEqual([]);
}

const records = (app: App, connectionId: string) =>
  fetch(`${stack.gatewayUrl}/v1/connections/${connectionId}/records`, {
    headers: { authorization: `Bearer ${app.key}` },
  });

/** After a form post: the passkey page when the broker wanted a fresh confirmation, then back. */
async function confirmWithPasskeyIfAsked(): Promise<boolean> {
  if (new URL(page.url()).pathname !== '/v1/auth/signin') return false;
  await signInOnSigninPage(page);
  return true;
}

let connectionId: string;

/** The connection's sync state, as an application holding a grant reads it. */
async function syncOf(id: string): Promise<{ state: string; lastSuccessAt: string | null }> {
  const response = await fetch(`${stack.gatewayUrl}/v1/connections/${id}/sync`, {
    headers: { authorization: `Bearer ${planner.key}` },
  });
  return (await response.json()) as { state: string; lastSuccessAt: string | null };
}

/** GET /v1/me/audit/entries/{id} as the page's script reads it. */
interface Answer {
  entry: { index: number };
  canonicalEntry: string;
  checkpoint: { rootHash: string; signedNote: string } | null;
}

describe('the portal at /account', () => {
  it('sends a signed-out browser to the passkey page and back; an empty account says what to expect', async () => {
    await page.goto(`${base}/account`);
    expect(new URL(page.url()).pathname).toBe('/v1/auth/signin');
    await checkPage('01-signin');
    await createAccountOnSigninPage(page, 'Portal Person');
    expect(new URL(page.url()).pathname).toBe('/account');
    await expect(page.locator('h1').textContent()).resolves.toBe('Your connections');
    await expect(page.locator('main').textContent()).resolves.toContain('You have not connected anything yet');
    await checkPage('02-empty');
  }, 60_000);

  it('shows each connection with what is stored and every application named, scopes in words', async () => {
    const person = await browserPerson(context, page, stack.gatewayUrl);
    ({ connectionId } = await connectSourceAccount(
      client,
      digest,
      'demo',
      ['demo:read:notes', 'demo:read:profile'],
      'alice',
      person,
    ));
    // A second application asks for what the connection already covers: allowed without a second source login.
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: planner.orgId,
      applicationId: planner.appId,
      applicationName: planner.name,
      integration: 'demo',
      scopes: ['demo:read:notes'],
      callbackUrl: planner.callbackUrl,
    });
    const reused = await allowConnectSession(client, session.sessionToken, person);
    expect(reused.connectionId).toBe(connectionId);
    await waitFor('the first sync to store records', async () => {
      const res = await records(digest, connectionId);
      return res.status === 200 && ((await res.json()) as { records: unknown[] }).records.length > 0;
    });

    await page.goto(`${base}/account`);
    const main = (await page.locator('main').textContent()) ?? '';
    expect(main).toContain('Demo Notes');
    expect(main).toContain('Connected');
    // Names, escaped (the app chose markup for its name: it shows as text).
    expect(main).toContain('Notes Digest <b>');
    expect(await page.locator('main b').count()).toBe(0);
    expect(main).toContain('Weekly Planner');
    expect(main).toContain('Read your notes.');
    expect(main).toContain('See your Demo Notes name.');
    expect(main).toMatch(/Records stored\s*[1-9]/);
    // Per type, counted by the Personal Server itself, with the catalog's words for the type.
    expect(main).toMatch(/[1-9]\d* document\.note/);
    // Notes Digest has read the connection (the wait above): when, beside its grant, once the audit log has it.
    await waitFor('the last read beside the grant', async () => {
      await page.reload();
      const text = (await page.locator('main').textContent()) ?? '';
      return /Notes Digest <b>\s*Allowed [0-9-]+ [0-9:]+ UTC; last read [0-9-]+ [0-9:]+ UTC/.test(text);
    });
    // The page's own protections.
    const res = await page.request.get(`${base}/account`);
    expect(res.headers()['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers()['content-security-policy']).not.toContain('script-src');
    await checkPage('03-connections');
  }, 60_000);

  it('downloads everything as one JSON document: every record decrypted for the person, no secret', async () => {
    // A fresh passkey use first: an export needs one, like every change of access.
    await page.goto(`${base}/v1/auth/signin?prompt=login&return_to=%2Faccount%2Fsecurity`);
    await signInOnSigninPage(page);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download everything (JSON)' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^context-gateway-export-\d{4}-\d{2}-\d{2}\.json$/);
    const text = readFileSync(await download.path(), 'utf8');
    const exported = JSON.parse(text) as {
      format: string;
      account: { userId: string };
      passkeys: unknown[];
      connections: {
        id: string;
        source: string;
        grants: { application: string; scopes: string[] }[];
        records: { type: string; data: Record<string, unknown> | null }[];
      }[];
    };
    expect(exported.format).toBe('context-gateway-export/1');
    expect(exported.passkeys).toHaveLength(1);
    const [connection] = exported.connections;
    expect(connection).toMatchObject({ id: connectionId, source: 'Demo Notes' });
    expect(connection!.grants.map((g) => g.application).sort()).toEqual(['Notes Digest <b>', 'Weekly Planner']);
    // Every live record, as many as the Personal Server counts, each with its body.
    const { counts } = await client.request(rpc.personalServer.countRecords, {
      userId: exported.account.userId,
      connectionId,
    });
    expect(connection!.records).toHaveLength(counts.reduce((sum, c) => sum + Number(c.count), 0));
    expect(connection!.records.every((r) => r.data !== null && typeof r.data === 'object')).toBe(true);
    // No session token, no key, no credential of the source.
    expect(text).not.toMatch(/cg_ss_|cg_wc_|access_token|refresh_token/);
    // Another site (or an identity provider sending the browser back) does not start the
    // download: the person gets our page with the link, and no record.
    const cookie = `__Host-cg_session=${await sessionCookie(context)}`;
    const crossSite = await fetch(`${stack.gatewayUrl}/account/export`, {
      headers: { cookie, 'sec-fetch-site': 'cross-site' },
      redirect: 'manual',
    });
    expect(crossSite.status).toBe(200);
    expect(crossSite.headers.get('content-type')).toContain('text/html');
    expect(crossSite.headers.get('content-disposition')).toBeNull();
    const linkPage = await crossSite.text();
    expect(linkPage).toContain('href="/account/export"');
    expect(linkPage).not.toContain('document.note');
  }, 60_000);

  it('works at 360 px, with the keyboard, skip link first and focus visible', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(`${base}/account`);
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(360);
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string>('document.activeElement.textContent')).toBe('Skip to content');
    const outline = await page.evaluate<string>('getComputedStyle(document.activeElement).outlineStyle');
    expect(outline).not.toBe('none');
    await checkPage('04-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
  }, 60_000);

  it("revoking one application fails that application's very next query, and only its", async () => {
    expect((await records(digest, connectionId)).status).toBe(200);
    const revoke = page.getByRole('button', { name: 'Revoke access for Notes Digest <b> to Demo Notes' });
    await Promise.all([page.waitForURL((u) => u.pathname !== '/account' || u.search !== ''), revoke.click()]);
    if (await confirmWithPasskeyIfAsked()) {
      await Promise.all([page.waitForURL((u) => u.search === '?notice=revoked'), revoke.click()]);
    }
    expect(page.url()).toBe(`${base}/account?notice=revoked`);
    expect(await page.getByRole('status').textContent()).toContain('Access revoked');
    const next = await records(digest, connectionId);
    expect(next.status).toBe(403);
    expect(((await next.json()) as { code: string }).code).toBe('grant_revoked');
    expect((await records(planner, connectionId)).status).toBe(200);
    expect(await page.locator('main').textContent()).not.toContain('Notes Digest');
  }, 60_000);

  it('a connection the source stopped accepting is reconnected from the portal: a sign-in at the source, no new grant', async () => {
    // The source refuses every refresh: the next sync marks the connection needs_reauth.
    await demo.control.expireTokens(true);
    const sync = await fetch(`${stack.gatewayUrl}/v1/connections/${connectionId}/sync`, {
      method: 'POST',
      headers: { authorization: `Bearer ${planner.key}` },
    });
    expect(sync.status).toBe(202);
    await waitFor('the connection to need a new sign-in', async () => {
      const { connections } = await client.request(rpc.broker.listUserConnections, {
        personSessionToken: await sessionCookie(context),
      });
      return connections.some(
        (c) => c.connection?.id === connectionId && c.connection.status === ConnectionStatus.NEEDS_REAUTH,
      );
    });
    const before = await syncOf(connectionId);
    await page.goto(`${base}/account`);
    expect(await page.locator('main').textContent()).toContain('no longer accepts our access');
    await checkPage('05r-needs-reauth');
    const reconnect = page.getByRole('button', { name: 'Reconnect Demo Notes: sign in to it again' });
    await Promise.all([page.waitForURL((u) => u.pathname !== '/account'), reconnect.click()]);
    if (await confirmWithPasskeyIfAsked()) {
      await Promise.all([page.waitForURL((u) => u.pathname !== '/account'), reconnect.click()]);
    }
    await page.waitForSelector('h1:has-text("Sign in to Demo Notes again")');
    await checkPage('05s-reconnect');
    await page.getByRole('link', { name: 'Continue to Demo Notes' }).click();
    await page.waitForURL((u) => u.origin === new URL(demo.url).origin);
    await page.fill('#login', 'alice');
    await page.fill('#password', 'password');
    await page.click('#sign-in');
    await Promise.all([page.waitForURL((u) => u.search === '?notice=reconnected'), page.click('#allow')]);
    expect(await page.getByRole('status').textContent()).toContain('Reconnected');
    expect(await page.locator('main').textContent()).not.toContain('no longer accepts our access');
    // The renewed access syncs again: a sync succeeds after the one that failed.
    await waitFor('a sync with the renewed access', async () => {
      const now = await syncOf(connectionId);
      return now.state === 'idle' && (now.lastSuccessAt ?? '') > (before.lastSuccessAt ?? '');
    });
    // No grant changed: the revoked application still reads nothing.
    expect((await records(digest, connectionId)).status).toBe(403);
  }, 90_000);

  it('adds a passkey, removes the old one (never the last), and signs out every other session', async () => {
    await page.goto(`${base}/account/security`);
    expect(await page.locator('main').textContent()).toContain('Your only passkey');
    expect(await page.getByRole('button', { name: /^Remove passkey/ }).count()).toBe(0);
    await checkPage('05-security');
    // A new device (Chromium keeps one internal authenticator at a time). The Personal Server
    // pinned the laptop's passkey at the first consent; the new one is added untrusted, as no
    // trusted passkey is at hand to vouch for it.
    const [laptopKey] = await authenticator.credentials();
    await authenticator.remove();
    authenticator = await addVirtualAuthenticator(context, page);
    await Promise.all([
      page.waitForURL((u) => u.search === '?notice=passkey_untrusted'),
      page.getByRole('button', { name: 'Add a passkey' }).click(),
    ]);
    expect(await page.getByRole('button', { name: /^Remove passkey/ }).count()).toBe(2);
    expect(await page.locator('main').textContent()).toContain('Not trusted by your Personal Server yet');
    await checkPage('05a-security-untrusted');
    // The laptop's passkey at hand again (here, in the same authenticator; not discoverable,
    // as the new passkey holds this person's one discoverable slot) vouches for the new one.
    await authenticator.cdp.send('WebAuthn.addCredential', {
      authenticatorId: authenticator.authenticatorId,
      credential: { ...laptopKey!, isResidentCredential: false },
    });
    await Promise.all([
      page.waitForURL((u) => u.search === '?notice=passkey_trusted'),
      page.getByRole('button', { name: 'Trust this passkey, passkey 2' }).click(),
    ]);
    expect(await page.locator('main').textContent()).not.toContain('Not trusted');
    await authenticator.cdp.send('WebAuthn.removeCredential', {
      authenticatorId: authenticator.authenticatorId,
      credentialId: laptopKey!.credentialId,
    });
    // The new one is named, so the list says which is which.
    await page.getByRole('textbox', { name: 'Name of passkey 2' }).fill('  Phone ');
    await Promise.all([
      page.waitForURL((u) => u.search === '?notice=passkey_renamed'),
      page.getByRole('button', { name: 'Save name of passkey 2' }).click(),
    ]);
    expect(await page.locator('main li strong').allTextContents()).toEqual(['Passkey 1', 'Phone']);
    await checkPage('05b-security-named');
    await Promise.all([
      page.waitForURL((u) => u.search === '?notice=passkey_removed'),
      page.getByRole('button', { name: 'Remove passkey 1' }).click(),
    ]);
    expect(await page.locator('main').textContent()).toContain('Your only passkey');
    expect(await page.locator('main li strong').allTextContents()).toEqual(['Phone']);
    // The remaining passkey is the new device's: signing in with it works.
    expect(await authenticator.credentials()).toHaveLength(1);

    // A second device signed in with the same passkey (its credential copied over, as a
    // synced passkey would be); the main device's counter is moved past the copy's uses.
    const { credentials } = await authenticator.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: authenticator.authenticatorId,
    });
    const credential = credentials[0]!;
    const phone = await browser.newContext();
    const phonePage = await phone.newPage();
    const phoneKey = await addVirtualAuthenticator(phone, phonePage);
    await phoneKey.cdp.send('WebAuthn.addCredential', { authenticatorId: phoneKey.authenticatorId, credential });
    await phonePage.goto(`${base}/v1/auth/signin?return_to=%2Faccount`);
    await signInOnSigninPage(phonePage);
    const phoneCookie = `__Host-cg_session=${await sessionCookie(phone)}`;
    await authenticator.cdp.send('WebAuthn.removeCredential', {
      authenticatorId: authenticator.authenticatorId,
      credentialId: credential.credentialId,
    });
    await authenticator.cdp.send('WebAuthn.addCredential', {
      authenticatorId: authenticator.authenticatorId,
      credential: { ...credential, signCount: credential.signCount + 100 },
    });
    await phone.close();

    await page.reload();
    expect(await page.locator('tbody tr').count()).toBe(2);
    const current = `__Host-cg_session=${await sessionCookie(context)}`;
    await Promise.all([
      page.waitForURL((u) => u.search === '?notice=signed_out_others'),
      page.getByRole('button', { name: 'Sign out everywhere else' }).click(),
    ]);
    expect(await page.locator('tbody tr').count()).toBe(1);
    expect(await page.locator('tbody').textContent()).toContain('this browser');
    // The phone is signed out; this browser is not.
    expect((await fetch(`${stack.gatewayUrl}/v1/auth/session`, { headers: { cookie: phoneCookie } })).status).toBe(401);
    expect((await fetch(`${stack.gatewayUrl}/v1/auth/session`, { headers: { cookie: current } })).status).toBe(200);
    await checkPage('06-security-after');
  }, 60_000);

  it("a rule of one's own takes effect on the application's next query, and removing it restores access", async () => {
    expect((await records(planner, connectionId)).status).toBe(200);
    await page.goto(`${base}/account/rules`);
    expect(await page.locator('main').textContent()).toContain('You have no rules of your own');
    await checkPage('07-rules');
    await page.getByLabel('Never allow').check();
    await page.getByLabel('What').selectOption('integration:demo');
    await page.getByLabel('For', { exact: true }).selectOption({ label: 'Weekly Planner' });
    const add = () =>
      Promise.all([
        page.waitForURL((u) => u.pathname !== '/account/rules' || u.search !== ''),
        page.getByRole('button', { name: 'Add the rule' }).click(),
      ]);
    await add();
    if (await confirmWithPasskeyIfAsked()) {
      await page.getByLabel('Never allow').check();
      await page.getByLabel('What').selectOption('integration:demo');
      await page.getByLabel('For', { exact: true }).selectOption({ label: 'Weekly Planner' });
      await add();
    }
    expect(page.url()).toBe(`${base}/account/rules?notice=rule_added`);
    const table = (await page.locator('table').textContent()) ?? '';
    expect(table).toContain('Never');
    expect(table).toContain('Everything from Demo Notes');
    expect(table).toContain('Weekly Planner');
    await checkPage('08-rules-added');
    await waitFor('the rule to decide the next query', async () => {
      const res = await records(planner, connectionId);
      return res.status === 403 && ((await res.json()) as { code: string }).code === 'policy_denied';
    });

    const remove = () =>
      Promise.all([
        page.waitForURL((u) => u.pathname !== '/account/rules' || u.search !== '?notice=rule_added'),
        page.getByRole('button', { name: /^Remove the rule/ }).click(),
      ]);
    await remove();
    if (await confirmWithPasskeyIfAsked()) await remove();
    expect(page.url()).toBe(`${base}/account/rules?notice=rule_removed`);
    expect(await page.locator('main').textContent()).toContain('You have no rules of your own');
    expect((await records(planner, connectionId)).status).toBe(200);
  }, 60_000);

  it('an old session must confirm with the passkey before deleting; then the data is destroyed', async () => {
    // Past the step-up window since the last passkey use.
    await new Promise((r) => setTimeout(r, STEP_UP_MS + 1_000));
    const cookie = `__Host-cg_session=${await sessionCookie(context)}`;
    // The API says the same: a live session alone cannot delete.
    const api = await fetch(`${stack.gatewayUrl}/v1/me/connections/${connectionId}`, {
      method: 'DELETE',
      headers: { cookie },
    });
    expect(api.status).toBe(401);
    expect(((await api.json()) as { code: string }).code).toBe('reauthentication_required');
    // Nor download everything: the passkey first, then back to the download.
    const exported = await fetch(`${stack.gatewayUrl}/account/export`, { headers: { cookie }, redirect: 'manual' });
    expect(exported.status).toBe(303);
    expect(exported.headers.get('location')).toBe('/v1/auth/signin?prompt=login&return_to=%2Faccount%2Fexport');

    await page.goto(`${base}/account`);
    await page.getByRole('link', { name: 'Delete this connection…' }).click();
    expect(new URL(page.url()).pathname).toBe(`/account/connections/${connectionId}/delete`);
    expect(await page.getByRole('alert').textContent()).toContain('cannot be undone');
    await checkPage('09-confirm-delete');
    await page.getByLabel(/I understand/).check();
    await page.getByRole('button', { name: 'Delete the connection and its data' }).click();
    // Asked for the passkey, then back on the confirmation.
    expect(new URL(page.url()).pathname).toBe('/v1/auth/signin');
    expect(new URL(page.url()).searchParams.get('prompt')).toBe('login');
    // The refused attempt is in the audit as refused, with its reason — never as allowed.
    await waitFor('the refused deletion in the audit', async () => {
      const audited = (await (
        await fetch(`${stack.gatewayUrl}/v1/me/audit/entries?action=revocation&outcome=denied`, { headers: { cookie } })
      ).json()) as { entries: { connectionId: string | null; errorCode: string | null }[] };
      return audited.entries.some(
        (e) => e.connectionId === connectionId && e.errorCode === 'reauthentication_required',
      );
    });
    expect((await records(planner, connectionId)).status).toBe(200);
    await signInOnSigninPage(page);
    expect(new URL(page.url()).pathname).toBe(`/account/connections/${connectionId}/delete`);
    await page.getByLabel(/I understand/).check();
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/account'),
      page.getByRole('button', { name: 'Delete the connection and its data' }).click(),
    ]);
    expect(new URL(page.url()).searchParams.get('notice')).toMatch(/^(deleted|deleting)$/);
    const gone = await records(planner, connectionId);
    // Deleted: not found; still being shredded: the grant is already revoked.
    expect([404, 403]).toContain(gone.status);
    expect(['connection_not_found', 'grant_revoked']).toContain(((await gone.json()) as { code: string }).code);
    expect(await page.locator('main').textContent()).toContain('You have not connected anything yet');
  }, 60_000);

  it('the access log names who read what and what decided, and proves each entry in the signed log in the browser', async () => {
    await page.goto(`${base}/account/activity`);
    const table = (await page.locator('table').textContent()) ?? '';
    expect(table).toContain('Weekly Planner');
    expect(table).toContain('Read data');
    expect(table).toContain('allowed');
    // Reads per application, as bars.
    expect(await page.locator('svg title').textContent()).toMatch(/Weekly Planner [1-9]/);
    // The page's own script checks each entry's inclusion proof and the checkpoint's
    // signature with WebCrypto; entries newer than the last checkpoint wait for the next.
    await waitFor(
      'the entries to be verified in a signed checkpoint',
      async () => {
        await page.reload();
        await waitFor(
          'the page to check every entry',
          async () => (await page.locator('td.proof:not([data-proof])').count()) === 0,
          10_000,
        );
        expect(await page.locator('td.proof[data-proof=failed]').count()).toBe(0);
        return (await page.locator('td.proof[data-proof=verified]').count()) > 0;
      },
      45_000,
    );
    expect(await page.locator('td.proof[data-proof=verified]').first().textContent()).toMatch(/^Verified/);
    await checkPage('10-activity');
  }, 60_000);

  it('a form without its CSRF token changes nothing, and says so in a page', async () => {
    const res = await page.request.post(`${base}/account/sign-out`, { form: { csrf: 'x'.repeat(43) } });
    expect(res.status()).toBe(403);
    expect(res.headers()['content-type']).toContain('text/html');
    expect(await res.text()).toContain('csrf_invalid');
    // Still signed in: the refused form changed nothing.
    const cookie = `__Host-cg_session=${await sessionCookie(context)}`;
    expect((await fetch(`${stack.gatewayUrl}/v1/auth/session`, { headers: { cookie } })).status).toBe(200);
  });

  it('the proof check refuses a tampered answer from the log: a wrong index, root, signature or entry', async () => {
    const tampers: ((a: Answer) => void)[] = [
      (a) => {
        a.entry.index += 1;
      },
      (a) => {
        a.checkpoint!.rootHash = Buffer.alloc(32, 7).toString('base64');
      },
      (a) => {
        // The log's own signature is the first line after the blank line (witnesses' follow).
        const note = a.checkpoint!.signedNote;
        const start = note.indexOf('\n\n') + 2;
        const end = note.indexOf('\n', start);
        const line = note.slice(start, end);
        const cut = line.lastIndexOf(' ') + 1;
        const sig = Buffer.from(line.slice(cut), 'base64');
        sig[sig.length - 1]! ^= 1;
        a.checkpoint!.signedNote = `${note.slice(0, start)}${line.slice(0, cut)}${sig.toString('base64')}${note.slice(end)}`;
      },
      (a) => {
        const bytes = Buffer.from(a.canonicalEntry, 'base64').toString('utf8');
        const flipped = bytes.includes('AUDIT_OUTCOME_ALLOWED')
          ? bytes.replace('AUDIT_OUTCOME_ALLOWED', 'AUDIT_OUTCOME_DENIED')
          : bytes.replace('AUDIT_OUTCOME_DENIED', 'AUDIT_OUTCOME_ALLOWED');
        expect(flipped).not.toBe(bytes);
        a.canonicalEntry = Buffer.from(flipped).toString('base64');
      },
    ];
    let n = 0;
    await page.route('**/v1/me/audit/entries/*', async (route) => {
      const response = await route.fetch();
      const answer = (await response.json()) as Answer;
      if (answer.checkpoint) tampers[n++ % tampers.length]!(answer);
      await route.fulfill({ response, json: answer });
    });
    try {
      await page.goto(`${base}/account/activity`);
      await waitFor(
        'every entry checked',
        async () => (await page.locator('td.proof:not([data-proof])').count()) === 0,
      );
      expect(n).toBeGreaterThanOrEqual(tampers.length);
      expect(await page.locator('td.proof[data-proof=verified]').allTextContents()).toEqual([]);
      const failed = await page.locator('td.proof[data-proof=failed]').allTextContents();
      expect(failed.length).toBeGreaterThanOrEqual(tampers.length);
      expect(failed.every((t) => t.startsWith('NOT verified'))).toBe(true);
    } finally {
      await page.unroute('**/v1/me/audit/entries/*');
    }
  }, 60_000);
});

describe('error pages for browsers', () => {
  it('a truncated connect link or a bad return_to is an HTML page with its code; API clients keep problem+json', async () => {
    for (const path of ['/v1/connect/abc', '/v1/auth/signin?return_to=https://evil.example/']) {
      const res = await page.goto(`${base}${path}`);
      expect(res?.status()).toBe(422);
      expect(res?.headers()['content-type']).toContain('text/html');
      expect(await page.locator('main').textContent()).toContain('validation_failed');
      await checkPage(`11-error${path.startsWith('/v1/connect') ? '-connect' : '-signin'}`);
      const api = await fetch(`${stack.gatewayUrl}${path}`);
      expect(api.headers.get('content-type')).toContain('application/problem+json');
    }
  });
});

describe('deleting the account', () => {
  it("destroys every connection, ends every application's access and the account; the audit log is kept", async () => {
    // A fresh passkey use (allowing a grant needs one), then a connection again.
    await page.goto(`${base}/v1/auth/signin?prompt=login&return_to=%2Faccount`);
    await signInOnSigninPage(page);
    const person = await browserPerson(context, page, stack.gatewayUrl);
    const { userId } = person;
    const cookie = `__Host-cg_session=${person.sessionToken}`;
    const { connectionId: kept } = await connectSourceAccount(
      client,
      digest,
      'demo',
      ['demo:read:notes'],
      'alice',
      person,
    );
    await waitFor('the connection to answer', async () => (await records(digest, kept)).status === 200);

    await page.goto(`${base}/account/security`);
    await page.getByRole('link', { name: 'Delete your account…' }).click();
    expect(new URL(page.url()).pathname).toBe('/account/delete');
    const warning = (await page.getByRole('alert').textContent()) ?? '';
    expect(warning).toContain('Demo Notes');
    expect(warning).toContain('Notes Digest <b>');
    await checkPage('12-delete-account');
    const submit = () =>
      Promise.all([
        page.waitForURL((u) => u.pathname !== '/account/delete'),
        page.getByRole('button', { name: 'Delete my account' }).click(),
      ]);
    await page.getByLabel(/I understand/).check();
    await submit();
    if (await confirmWithPasskeyIfAsked()) {
      await page.getByLabel(/I understand/).check();
      await submit();
    }
    expect(new URL(page.url()).pathname).toBe('/account/deleted');
    await checkPage('13-account-deleted');

    // The application's next query fails; the session and the account are gone.
    const gone = await records(digest, kept);
    expect(['connection_not_found', 'grant_revoked']).toContain(((await gone.json()) as { code: string }).code);
    expect((await fetch(`${stack.gatewayUrl}/v1/auth/session`, { headers: { cookie } })).status).toBe(401);
    await page.goto(`${base}/account`);
    expect(new URL(page.url()).pathname).toBe('/v1/auth/signin');
    // The passkey still on the device signs in to nothing.
    await page.click('#sign-in');
    await page.waitForSelector('#status.error');
    // The audit log keeps what happened, the deletion included.
    await waitFor('the deletion in the audit log', async () => {
      const { entries } = await client.request(rpc.audit.searchEntries, { userId, limit: 500 });
      return entries.some((e) => e.event?.resource === `account:${userId}`);
    });
  }, 90_000);
});
