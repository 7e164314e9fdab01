import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';

import {
  addVirtualAuthenticator,
  browserUrl,
  createAccountOnSigninPage,
  launchBrowser,
  signInOnSigninPage,
  type VirtualAuthenticator,
} from '../support/browser.js';
import { entryIsInCheckpoint, type EntryWithProof } from '../support/inclusion-proof.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// A person creates a gateway account with a passkey on the sign-in page, signs out, signs
// in again; the attacks on the ceremony (replay, a challenge used twice, a response for
// another challenge, an open redirect) fail.
let stack: TestStack;
let browser: Browser;
let base: string;
/** Challenges this file saw; none may ever reach a log. */
const challengesSeen: string[] = [];

beforeAll(async () => {
  stack = await startTestStack('identity-passkeys');
  base = browserUrl(stack.gatewayUrl);
  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
}, 60_000);

async function newPerson(): Promise<{ context: BrowserContext; page: Page; authenticator: VirtualAuthenticator }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  return { context, page, authenticator: await addVirtualAuthenticator(context, page) };
}

async function sessionOf(page: Page) {
  const res = await page.request.get(`${base}/v1/auth/session`);
  return { status: res.status(), body: (await res.json()) as { userId?: string; displayName?: string; code?: string } };
}

/** Creates an account through the page; returns once the browser is back at return_to. */
async function createAccount(page: Page, name: string, returnTo = '/v1/auth/session') {
  await page.goto(`${base}/v1/auth/signin?return_to=${encodeURIComponent(returnTo)}`);
  await createAccountOnSigninPage(page, name);
  expect(page.url()).toBe(`${base}${returnTo}`);
}

async function signIn(page: Page, returnTo = '/v1/auth/session') {
  await page.goto(`${base}/v1/auth/signin?return_to=${encodeURIComponent(returnTo)}`);
  await signInOnSigninPage(page);
  expect(page.url()).toBe(`${base}${returnTo}`);
}

describe('passkey accounts in a real browser', () => {
  it('creates an account with a passkey, signs out, and signs in again with it', async () => {
    const { context, page, authenticator } = await newPerson();
    try {
      await createAccount(page, 'Ada Lovelace');
      const created = await sessionOf(page);
      expect(created).toMatchObject({ status: 200, body: { displayName: 'Ada Lovelace' } });
      const [credential] = await authenticator.credentials();
      expect(credential).toMatchObject({ isResidentCredential: true });

      const cookie = (await context.cookies(base)).find((c) => c.name === '__Host-cg_session');
      expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/', secure: true });
      expect(cookie!.value).toMatch(/^cg_ss_/);

      // sign out on the page: the session ends server-side, not only in this browser
      await page.goto(`${base}/v1/auth/signin`);
      await page.waitForSelector('#signed-in:not([hidden])');
      await page.click('#sign-out');
      await page.waitForSelector('#signed-out:not([hidden])');
      expect((await sessionOf(page)).status).toBe(401);
      const replayedCookie = await fetch(`${base}/v1/auth/session`, {
        headers: { cookie: `__Host-cg_session=${cookie!.value}` },
      });
      expect(replayedCookie.status).toBe(401);

      await signIn(page);
      const again = await sessionOf(page);
      expect(again).toMatchObject({ status: 200, body: { userId: created.body.userId, displayName: 'Ada Lovelace' } });
      // the authenticator's counter moved, and the gateway accepted the new value
      expect((await authenticator.credentials())[0]!.signCount).toBeGreaterThan(credential!.signCount);

      // both ceremonies are in the person's own audit trail
      const entries = await waitFor(
        'sign-ins in the audit trail',
        async () => {
          const res = await page.request.get(`${base}/v1/me/audit/entries?action=sign_in`);
          const body = (await res.json()) as {
            entries?: {
              eventId: string;
              action: string;
              outcome: string;
              userId: string | null;
              operation: string | null;
            }[];
          };
          return (body.entries?.length ?? 0) >= 2 ? body.entries : undefined;
        },
        15_000,
      );
      expect(entries.map((e) => [e.outcome, e.userId, e.operation]).sort()).toEqual([
        ['allowed', created.body.userId, 'POST /v1/auth/passkeys/authentication/verify'],
        ['allowed', created.body.userId, 'POST /v1/auth/passkeys/registration/verify'],
      ]);
      // Each with its proof of being in the signed log, checked here without project code.
      const proven = await waitFor(
        'a signed checkpoint covering the sign-in',
        async () => {
          const res = await page.request.get(`${base}/v1/me/audit/entries/${entries[0]!.eventId}`);
          const body = (await res.json()) as EntryWithProof;
          return res.status() === 200 && body.checkpoint ? body : undefined;
        },
        30_000,
      );
      expect(entryIsInCheckpoint(proven)).toBe(true);
      // Someone else's entry (or none) is not found.
      const missing = await page.request.get(`${base}/v1/me/audit/entries/00000000-0000-4000-8000-000000000000`);
      expect(missing.status()).toBe(404);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('offers the passkey in the account field (conditional mediation): picking it signs in', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Chromium's virtual authenticator picks the passkey from the autofill at once, as a person would.
    await addVirtualAuthenticator(context, page, { autofill: true });
    try {
      // Records how the pages call navigator.credentials.get, across navigations (injected by
      // the DevTools protocol before the page's own scripts; the page's CSP is unchanged).
      await page.addInitScript(
        '(() => { const get = navigator.credentials.get.bind(navigator.credentials); ' +
          'navigator.credentials.get = (o) => { const seen = JSON.parse(sessionStorage.getItem("mediations") || "[]"); ' +
          'seen.push((o && o.mediation) || "button"); sessionStorage.setItem("mediations", JSON.stringify(seen)); return get(o); }; })()',
      );
      // Signed out, with no passkey yet: the autofill request waits; creating an account cancels it.
      await createAccount(page, 'Grace Hopper');
      await context.clearCookies();
      await page.evaluate('sessionStorage.clear()');

      // The page may sign in and leave before a test could read it: its markup (signed out, as
      // this browser is now) is read with a request of our own.
      const signinUrl = `${base}/v1/auth/signin?return_to=%2Fv1%2Fauth%2Fsession`;
      expect(await (await fetch(signinUrl)).text()).toMatch(/id="username"[^>]*autocomplete="username webauthn"/);
      await page.goto(signinUrl);
      await page.waitForURL((u) => u.pathname === '/v1/auth/session');
      expect((await sessionOf(page)).body.displayName).toBe('Grace Hopper');
      expect(await page.evaluate('JSON.parse(sessionStorage.getItem("mediations"))')).toEqual(['conditional']);

      // prompt=login asks with the button only: no autofill request waits there.
      await page.goto(`${base}/v1/auth/signin?prompt=login`);
      await page.waitForSelector('body[data-autofill="off"]');
      expect(await page.evaluate('JSON.parse(sessionStorage.getItem("mediations"))')).toEqual(['conditional']);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('keeps several passkeys per account: a signed-in user adds a second one', async () => {
    const { context, page, authenticator } = await newPerson();
    try {
      await createAccount(page, 'Grace Hopper');
      const { body: first } = await sessionOf(page);
      // a second device: the first one leaves, a new authenticator arrives in the signed-in browser
      await authenticator.remove();
      const second = await addVirtualAuthenticator(context, page);
      const options = await page.request.post(`${base}/v1/auth/passkeys/registration/options`, { data: {} });
      expect(options.status()).toBe(200);
      expect(((await options.json()) as { excludeCredentials: unknown[] }).excludeCredentials).toHaveLength(1);
      await page.goto(`${base}/v1/auth/signin`);
      const added = await page.evaluate(
        async (optionsJSON) => {
          const lib = (
            globalThis as unknown as { SimpleWebAuthnBrowser: { startRegistration(o: unknown): Promise<unknown> } }
          ).SimpleWebAuthnBrowser;
          const response = await lib.startRegistration({ optionsJSON });
          const res = await fetch('/v1/auth/passkeys/registration/verify', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ response }),
          });
          return { status: res.status, body: await res.json() };
        },
        await options.json(),
      );
      expect(added).toMatchObject({ status: 200, body: { userId: first.userId, newUser: false } });
      expect(await second.credentials()).toHaveLength(1);
      // the second passkey signs in to the same account
      await page.request.delete(`${base}/v1/auth/session`);
      await signIn(page);
      expect((await sessionOf(page)).body.userId).toBe(first.userId);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('refuses a write another origin of the same site makes with the session cookie; the session stays', async () => {
    const { context, page } = await newPerson();
    // Another origin on the same site (localhost, another port): the browser sends even a
    // SameSite cookie with its form post, so only the gateway's origin check stands.
    const target = `${base}/v1/me/policy/rules`;
    const other = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<form id="f" method="POST" action="${target}"><input name="effect" value="deny"></form>` +
          `<script>document.getElementById('f').submit()</script>`,
      );
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      await createAccount(page, 'Same Site');
      const answered = page.waitForResponse((res) => res.url() === target);
      await page.goto(`http://localhost:${(other.address() as AddressInfo).port}/`);
      const res = await answered;
      expect(await res.request().allHeaders()).toMatchObject({
        'sec-fetch-site': 'same-site',
        cookie: expect.stringContaining('__Host-cg_session='),
      });
      expect(res.status()).toBe(403);
      expect(await res.json()).toMatchObject({ code: 'csrf_invalid' });
      expect((await sessionOf(page)).status).toBe(200);
    } finally {
      other.close();
      await context.close();
    }
  }, 60_000);

  it('asks for the passkey again with prompt=login, and the fresh session replaces the old one', async () => {
    const { context, page } = await newPerson();
    try {
      await createAccount(page, 'Step Up');
      const before = await page.request.get(`${base}/v1/auth/session`);
      const first = (await before.json()) as { userId: string; authenticatedAt: string };
      const oldCookie = (await context.cookies(base)).find((c) => c.name === '__Host-cg_session')!.value;

      await page.goto(`${base}/v1/auth/signin?prompt=login&return_to=${encodeURIComponent('/v1/auth/session')}`);
      // no "continue as" shortcut: the passkey is asked for
      expect(await page.isVisible('#sign-in')).toBe(true);
      expect(await page.isVisible('#signed-in')).toBe(false);
      await signInOnSigninPage(page);
      const after = (await sessionOf(page)).body as { userId: string; authenticatedAt?: string };
      expect(after.userId).toBe(first.userId);
      expect(Date.parse(after.authenticatedAt!)).toBeGreaterThan(Date.parse(first.authenticatedAt));
      // the session it replaced is over, even for a copy of its cookie
      expect(
        (await fetch(`${base}/v1/auth/session`, { headers: { cookie: `__Host-cg_session=${oldCookie}` } })).status,
      ).toBe(401);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('rejects a replayed authentication response, and a response for another challenge', async () => {
    const { context, page } = await newPerson();
    try {
      await createAccount(page, 'Replay Target');
      await page.request.delete(`${base}/v1/auth/session`);

      // capture the browser's own verify request as an eavesdropper would
      let captured: { body: string; cookie: string } | undefined;
      page.on('request', (request: Request) => {
        if (request.url().endsWith('/v1/auth/passkeys/authentication/verify')) {
          void request
            .allHeaders()
            .then((h) => (captured = { body: request.postData() ?? '', cookie: h.cookie ?? '' }));
        }
      });
      await signIn(page);
      expect((await sessionOf(page)).status).toBe(200);
      expect(captured?.cookie).toContain('__Host-cg_ceremony=');

      // the same response with the same ceremony: the challenge is spent
      const replay = await fetch(`${base}/v1/auth/passkeys/authentication/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: captured!.cookie },
        body: captured!.body,
      });
      expect(replay.status).toBe(400);
      expect(await replay.json()).toMatchObject({ code: 'webauthn_challenge_invalid' });
      expect(replay.headers.get('set-cookie')).toBeNull();

      // the same response into a fresh ceremony: it signed another challenge
      const fresh = await fetch(`${base}/v1/auth/passkeys/authentication/options`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      const ceremony = fresh.headers.get('set-cookie')!.split(';')[0]!;
      challengesSeen.push(((await fresh.json()) as { challenge: string }).challenge);
      const clientData = (JSON.parse(captured!.body) as { response: { response: { clientDataJSON: string } } }).response
        .response.clientDataJSON;
      challengesSeen.push(
        (JSON.parse(Buffer.from(clientData, 'base64url').toString('utf8')) as { challenge: string }).challenge,
      );
      const spliced = await fetch(`${base}/v1/auth/passkeys/authentication/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: ceremony },
        body: captured!.body,
      });
      expect(spliced.status).toBe(401);
      expect(await spliced.json()).toMatchObject({ code: 'webauthn_verification_failed' });
      expect(spliced.headers.get('set-cookie')).toBeNull();
      // ... and that fresh ceremony is now spent too: single use even when it failed
      const again = await fetch(`${base}/v1/auth/passkeys/authentication/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: ceremony },
        body: captured!.body,
      });
      expect(await again.json()).toMatchObject({ code: 'webauthn_challenge_invalid' });
    } finally {
      await context.close();
    }
  }, 60_000);

  it('refuses a sign-in when the authenticator did not verify the user', async () => {
    const { context, page, authenticator } = await newPerson();
    try {
      await createAccount(page, 'Unverified');
      await page.request.delete(`${base}/v1/auth/session`);
      await authenticator.setUserVerified(false);
      await page.goto(`${base}/v1/auth/signin`);
      await page.click('#sign-in');
      await page.waitForSelector('#status.error');
      expect((await sessionOf(page)).status).toBe(401);
    } finally {
      await context.close();
    }
  }, 60_000);

  it('only redirects to paths on the gateway', async () => {
    for (const target of ['https://evil.example/', '//evil.example/x', '/\\evil.example']) {
      const res = await fetch(`${base}/v1/auth/signin?return_to=${encodeURIComponent(target)}`);
      expect({ target, status: res.status }).toEqual({ target, status: 422 });
    }
    const ok = await fetch(`${base}/v1/auth/signin?return_to=${encodeURIComponent('/v1/connect/x?y=1')}`);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await ok.text()).toContain('data-return-to="/v1/connect/x?y=1"');
  });

  // Last of the ceremony tests: it spends this address's budget for the rest of the minute.
  it('limits how many ceremonies one address may start per minute', async () => {
    const start = () =>
      fetch(`${base}/v1/auth/passkeys/authentication/options`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
    const statuses: number[] = [];
    let refused: Response | undefined;
    for (let batch = 0; batch < 32 && !refused; batch++) {
      const responses = await Promise.all(Array.from({ length: 20 }, start));
      statuses.push(...responses.map((r) => r.status));
      refused = responses.find((r) => r.status === 429);
    }
    expect(refused).toBeDefined();
    expect(await refused!.json()).toMatchObject({ code: 'rate_limited' });
    // the default budget (600 a minute) was honoured before the refusals began
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(600 - 40);
  }, 120_000);

  it('keeps passkey ceremonies, sessions and keys out of the logs', () => {
    const text = stack.logs.map((l) => l.raw).join('\n');
    expect(text).not.toMatch(/cg_ss_[A-Za-z0-9_-]{20}/);
    expect(text).not.toMatch(/cg_wc_[A-Za-z0-9_-]{20}/);
    // the spliced replay above failed on a challenge mismatch: the most tempting thing to log
    expect(challengesSeen).toHaveLength(2);
    for (const challenge of challengesSeen) expect(text).not.toContain(challenge);
  });
});
