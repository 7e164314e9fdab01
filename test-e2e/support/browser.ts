import { existsSync } from 'node:fs';

import { type Browser, type BrowserContext, type CDPSession, chromium, type Page } from 'playwright-core';

import type { SignedInPerson } from './soft-passkey.mjs';

// Headless Debian Chromium with a WebAuthn virtual authenticator (ENVIRONMENT.md): real
// passkey ceremonies, no hardware. Never `npx playwright install`: the system browser is used.
const CHROMIUM = '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  /** PKCS#8, base64: what WebAuthn.addCredential takes to put the passkey in another authenticator. */
  privateKey: string;
  rpId?: string;
  signCount: number;
  userHandle?: string;
}

/** A platform authenticator (user verification, discoverable credentials) attached to one page. */
export interface VirtualAuthenticator {
  cdp: CDPSession;
  authenticatorId: string;
  credentials(): Promise<VirtualCredential[]>;
  /** Whether the authenticator reports the user verified (false = the person failed the biometric). */
  setUserVerified(verified: boolean): Promise<void>;
  /** Detaches it (the device is gone); Chromium allows one internal authenticator at a time. */
  remove(): Promise<void>;
}

/**
 * Chromium's virtual authenticator answers a conditional-mediation (autofill) request by
 * itself, as if the person had picked the passkey from the account field at once: a sign-in
 * page would sign in before a test could press anything. So, unless `autofill` is set, the
 * context is a browser without passkey autofill (isConditionalMediationAvailable() is
 * false) and the pages' buttons are what signs in; the autofill itself has its own test.
 */
export async function addVirtualAuthenticator(
  context: BrowserContext,
  page: Page,
  options: { autofill?: boolean; transport?: 'internal' | 'usb' } = {},
): Promise<VirtualAuthenticator> {
  if (!options.autofill)
    await context.addInitScript(
      'if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);',
    );
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: options.transport ?? 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    cdp,
    authenticatorId,
    async credentials() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials;
    },
    async setUserVerified(verified) {
      await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: verified });
    },
    async remove() {
      await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    },
  };
}

/**
 * The URL a browser must use for the gateway: GATEWAY_PUBLIC_URL (http://localhost:<port>
 * in test stacks), because WebAuthn binds credentials to that origin and RP ID.
 */
export function browserUrl(gatewayUrl: string): string {
  return `http://localhost:${new URL(gatewayUrl).port}`;
}

const leftSigninPage = (url: URL) => url.pathname !== '/v1/auth/signin';

/**
 * On the gateway's sign-in page (wherever a flow sent the browser): creates an account
 * with a new passkey and resolves once the page has gone on to its return_to.
 */
export async function createAccountOnSigninPage(page: Page, displayName: string): Promise<void> {
  await page.waitForSelector('#create-account');
  await page.fill('#display-name', displayName);
  await Promise.all([page.waitForURL(leftSigninPage), page.click('#create-account')]);
}

/** On the sign-in page: signs in with the authenticator's passkey, resolves once the page has gone on. */
export async function signInOnSigninPage(page: Page): Promise<void> {
  await page.waitForSelector('#sign-in');
  await Promise.all([page.waitForURL(leftSigninPage), page.click('#sign-in')]);
}

/** The gateway session a browser context signed in with (its `__Host-cg_session` cookie). */
export async function sessionCookie(context: BrowserContext): Promise<string> {
  const cookie = (await context.cookies()).find((c) => c.name === '__Host-cg_session');
  if (!cookie) throw new Error('this browser is not signed in at the gateway');
  return cookie.value;
}

/**
 * The person signed in in `context`, as connectSourceAccount takes a person: their session
 * token, their user id, and a signer that asks their passkey (the virtual authenticator of
 * `page`) as the consent page's script does: navigator.credentials.get, user verification
 * required. Signing navigates `page` to a gateway page.
 */
export async function browserPerson(context: BrowserContext, page: Page, gatewayUrl: string): Promise<SignedInPerson> {
  const base = browserUrl(gatewayUrl);
  const sessionToken = await sessionCookie(context);
  const me = (await (
    await fetch(`${gatewayUrl}/v1/auth/session`, { headers: { cookie: `__Host-cg_session=${sessionToken}` } })
  ).json()) as { userId: string };
  const sign = async (challenge: string): Promise<string> => {
    await page.goto(`${base}/v1/auth/session`);
    // A string, run in the page (this package's types have no DOM).
    return page.evaluate<string>(`(async (c) => {
      const bytes = Uint8Array.from(atob(c.replace(/-/g, '+').replace(/_/g, '/')), (ch) => ch.charCodeAt(0));
      const credential = await navigator.credentials.get({
        publicKey: { challenge: bytes, rpId: location.hostname, userVerification: 'required', timeout: 30000 },
      });
      if (!credential) throw new Error('no passkey answered');
      return JSON.stringify(credential.toJSON());
    })(${JSON.stringify(challenge)})`);
  };
  return { userId: me.userId, sessionToken, sign };
}

/**
 * On the connect flow's consent page: Allow, which has the person's passkey (the context's
 * virtual authenticator) sign the consent before the form is posted; resolves once the answer
 * (the source's page, the app's callback, or the page again with a reason) has loaded.
 */
export async function allowOnConsentPage(page: Page): Promise<void> {
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Allow' }).click()]);
}
