import { createServer, type Server } from 'node:http';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser, BrowserContext, Page } from 'playwright-core';

import { addVirtualAuthenticator, browserUrl, launchBrowser } from '../support/browser.js';
import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { newPerson } from '../support/source-connection.js';
import { freePort, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// Netflix has no API: an app gets a Netflix connection through the normal connect flow (the
// person consents and signs in with a passkey, no source login, no key), then uploads the
// person's ViewingActivity.csv. A bad row is reported with its line number and the rest are
// imported; the same file uploaded again adds nothing; the connection is never polled.
const HEADER =
  'Profile Name,Start Time,Duration,Attributes,Title,Supplemental Video Type,Device Type,Bookmark,Latest Bookmark,Country\r\n';
const CSV =
  HEADER +
  'Ana,2024-03-01 20:15:00,00:42:10,,Dark: Season 1: Secrets (Episode 1),,Chrome PC (Cadmium),00:42:10,00:42:10,DE (Germany)\r\n' +
  'Ana,2024-03-02 25:00:00,00:10:00,,Broken Time,,TV,00:10:00,00:10:00,DE (Germany)\r\n' +
  'Ana,2024-03-03 21:00:00,00:05:00,,Trailer: Something,TRAILER,TV,00:05:00,00:05:00,DE (Germany)\r\n' +
  'Ben,2024-03-04 10:00:00,1:02:03,,"Movie, With Comma",,Phone,1:02:03,1:02:03,US (United States)\r\n';

let stack: TestStack;
let browser: Browser;
let appServer: Server;
let appCallback: string;
let key: string;
const callbacks: URL[] = [];

beforeAll(async () => {
  stack = await startTestStack('netflix-import', { OPERATOR_TOKEN });
  const port = await freePort();
  appCallback = `http://127.0.0.1:${port}/callback`;
  appServer = createServer((req, res) => {
    const url = new URL(req.url!, appCallback);
    if (url.pathname === '/callback') callbacks.push(url);
    res.writeHead(200, { 'content-type': 'text/plain' }).end('app got the callback');
  });
  await new Promise<void>((r) => appServer.listen(port, '127.0.0.1', r));
  const admin = adminClient(stack.gatewayUrl);
  const org = await admin.createOrganization('Netflix Org');
  // The org layer of policy allows Netflix (secure default: nothing).
  expect(
    (await admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['netflix'] }))
      .status,
  ).toBe(200);
  const app = await admin.createApplication(org.id, {
    name: 'Watch Stats',
    callbackUrls: [appCallback],
    integrations: ['netflix'],
    scopes: ['netflix:read:history'],
  });
  key = (await admin.issueApiKey(app.id)).secret;
  browser = await launchBrowser();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => appServer?.close(r));
  await stack?.stop();
}, 60_000);

async function api<T>(
  method: string,
  path: string,
  init: { body?: string; contentType?: string } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(init.contentType ? { 'content-type': init.contentType } : {}) },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

interface ImportResult {
  imported: number;
  written: number;
  unchanged: number;
  rejected: { line: number; message: string }[];
  rejectedTotal: number;
}
interface SyncState {
  state: string;
  lastError: string | null;
  recordsSynced: number;
  nextRunAt: string | null;
}

describe('Netflix: connect, then import the viewing history export', () => {
  let connectionId = '';
  /** The person's browser, kept for the portal upload at the end. */
  let context: BrowserContext;
  let page: Page;

  afterAll(async () => {
    await context?.close();
  });

  it('a person connects Netflix in the browser with a passkey only: no key to paste, no source login', async () => {
    // The broker follows application changes from the CONTROL stream: retry until it knows the app.
    const created = await waitFor('a connect session', async () => {
      const res = await api<{ connectUrl: string }>('POST', '/v1/connect/sessions', {
        contentType: 'application/json',
        body: JSON.stringify({
          integration: 'netflix',
          scopes: ['netflix:read:history'],
          callbackUrl: appCallback,
          state: 'nf',
        }),
      });
      return res.status === 201 ? res : undefined;
    });
    context = await browser.newContext();
    {
      page = await context.newPage();
      await addVirtualAuthenticator(context, page);
      const base = browserUrl(stack.gatewayUrl);
      await page.goto(created.body.connectUrl.replace(new URL(created.body.connectUrl).origin, base));
      await expect(page.textContent('body')).resolves.toContain('See what you watched on Netflix');
      await page.getByRole('link', { name: 'Continue with a passkey' }).click();
      await page.fill('#display-name', 'Nora');
      await Promise.all([page.waitForURL(/\/v1\/connect\/[A-Za-z0-9_-]{43}$/), page.click('#create-account')]);
      expect(await page.locator('#apiKey').count()).toBe(0);
      await expect(page.textContent('body')).resolves.toContain('data export');
      await page.getByRole('button', { name: 'Allow' }).click();
      await page.waitForURL((url) => url.href.startsWith(appCallback) && url.searchParams.get('state') === 'nf');
    }
    connectionId = callbacks.at(-1)!.searchParams.get('connectionId') ?? '';
    expect(connectionId).toMatch(/^[0-9a-f-]{36}$/);
    const seen = await api<{ integration: string; status: string }>('GET', `/v1/connections/${connectionId}`);
    expect(seen.body).toMatchObject({ integration: 'netflix', status: 'active' });
  }, 120_000);

  it('the INITIAL job does not try an API sync: the connection waits for imports, with no error and no next run', async () => {
    const state = await waitFor('the initial job handled', async () => {
      const s = (await api<SyncState>('GET', `/v1/connections/${connectionId}/sync`)).body;
      return s.state === 'idle' ? s : undefined;
    });
    expect(state).toMatchObject({ state: 'idle', lastError: null, nextRunAt: null, recordsSynced: 0 });
    // "Sync now" is refused with a reason, rather than queuing a run that can only fail.
    const now = await api<{ code: string; detail: string }>('POST', `/v1/connections/${connectionId}/sync`);
    expect(now.status).toBe(422);
    expect(now.body.detail).toMatch(/imports/);
  }, 60_000);

  it('an upload with a bad row names its line number and imports the rest; the records API returns them', async () => {
    const res = await api<ImportResult>('POST', `/v1/connections/${connectionId}/imports`, {
      body: CSV,
      contentType: 'text/csv',
    });
    expect(res.status).toBe(200);
    // The TRAILER row is a supplemental video, not a watch: skipped, never stored.
    expect(res.body).toMatchObject({ imported: 2, written: 2, unchanged: 0, rejectedTotal: 1 });
    expect(res.body.rejected).toEqual([{ line: 3, message: expect.stringMatching(/Start Time/) }]);
    const page = await api<{ records: { type: string; data: { title: string } }[]; nextCursor: string | null }>(
      'GET',
      `/v1/connections/${connectionId}/records?type=media.play_event&limit=100`,
    );
    expect(page.status).toBe(200);
    expect(page.body.records.map((r) => r.data.title).sort()).toEqual([
      'Dark: Season 1: Secrets (Episode 1)',
      'Movie, With Comma',
    ]);
  }, 60_000);

  it('the same file uploaded again adds no records, and the sync state shows no failed API sync', async () => {
    const again = await api<ImportResult>('POST', `/v1/connections/${connectionId}/imports`, {
      body: CSV,
      contentType: 'text/csv',
    });
    expect(again.body).toMatchObject({ imported: 2, written: 0, unchanged: 2, rejectedTotal: 1 });
    const page = await api<{ records: unknown[] }>(
      'GET',
      `/v1/connections/${connectionId}/records?type=media.play_event&limit=100`,
    );
    expect(page.body.records).toHaveLength(2);
    const state = (await api<SyncState>('GET', `/v1/connections/${connectionId}/sync`)).body;
    expect(state).toMatchObject({ state: 'idle', lastError: null, nextRunAt: null, recordsSynced: 2 });
    // Nothing was retried or reported as a failure for this connection.
    const complaints = stack.logs.filter(
      (l) =>
        l.service === 'sync-worker' &&
        l.raw.includes(connectionId) &&
        Number((l.json as { level?: number } | undefined)?.level ?? 0) >= 40,
    );
    expect(complaints.map((l) => l.raw)).toEqual([]);
  }, 60_000);

  it('the person uploads a file in the portal, sees its progress and the outcome, with skipped rows by line', async () => {
    await page.goto(`${browserUrl(stack.gatewayUrl)}/account`);
    await page.getByRole('link', { name: 'Upload a viewing-history file…' }).click();
    expect(new URL(page.url()).pathname).toBe(`/account/connections/${connectionId}/import`);
    const more =
      HEADER +
      'Ana,2024-03-05 20:00:00,00:30:00,,Dark: Season 1: Lies (Episode 2),,TV,00:30:00,00:30:00,DE (Germany)\r\n' +
      'Ana,not a time,00:10:00,,Broken,,TV,00:10:00,00:10:00,DE (Germany)\r\n';
    await page.setInputFiles('#import-file', {
      name: 'ViewingActivity.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(more),
    });
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.waitForSelector('#import-result p:has-text("Done")');
    const outcome = (await page.locator('#import-result').textContent()) ?? '';
    expect(outcome).toContain('1 rows read, 1 new or changed, 0 already there, 1 skipped');
    expect(outcome).toMatch(/Line 3: .*Start Time/);
    expect(await page.evaluate('document.getElementById("import-progress").value')).toBe(100);
    const records = await api<{ records: unknown[] }>(
      'GET',
      `/v1/connections/${connectionId}/records?type=media.play_event&limit=100`,
    );
    expect(records.body.records).toHaveLength(3);
    // Without the page's CSRF token the upload is refused; another person's upload to this
    // connection is not found. Neither imports anything.
    const base = browserUrl(stack.gatewayUrl);
    const noToken = await page.request.post(`${base}/account/connections/${connectionId}/imports`, {
      data: more.replace('Lies', 'Lies again'),
      headers: { 'content-type': 'text/csv', origin: base },
    });
    expect(noToken.status()).toBe(403);
    const other = await newPerson(stack.gatewayUrl);
    const token = 'T'.repeat(43);
    const theirs = await fetch(`${base}/account/connections/${connectionId}/imports`, {
      method: 'POST',
      body: more.replace('Lies', 'Lies once more'),
      headers: {
        'content-type': 'text/csv',
        origin: base,
        'x-csrf-token': token,
        cookie: `__Host-cg_session=${other.sessionToken}; __Host-cg_csrf=${token}`,
      },
    });
    expect(theirs.status).toBe(404);
    const after = await api<{ records: unknown[] }>(
      'GET',
      `/v1/connections/${connectionId}/records?type=media.play_event&limit=100`,
    );
    expect(after.body.records).toHaveLength(3);
  }, 60_000);
});
