import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { Clock } from '@context-gateway/clock';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { CurrentUser } from '../auth/auth.decorators.js';
import type { SessionUser } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { Route } from '../http/route.decorator.js';
import { AccountsService } from './accounts.service.js';
import { safeReturnTo } from './return-to.js';
import { renderSigninPage, SIGNIN_CSP, SIGNIN_SCRIPT } from './signin.page.js';
import { CeremonyStartLimiter } from './start-limiter.js';

const tags = ['accounts'];
const webauthnOptions = z
  .record(z.string(), z.unknown())
  .describe(
    'PublicKeyCredential(Creation|Request)OptionsJSON, for navigator.credentials (or @simplewebauthn/browser).',
  );
const ceremonyBody = z.strictObject({
  response: z
    .record(z.string(), z.unknown())
    .describe("The browser's RegistrationResponseJSON / AuthenticationResponseJSON."),
});
const signedIn = z.object({ userId: z.uuid(), newUser: z.boolean() });
const sessionSchema = z.object({
  userId: z.uuid(),
  displayName: z.string(),
  expiresAt: z.string(),
  authenticatedAt: z.string().describe('When the passkey that opened this session was used.'),
});
const signinQuery = z.strictObject({
  return_to: z
    .string()
    .optional()
    .refine(
      (v) => v === undefined || safeReturnTo(v) !== undefined,
      'must be a path on this gateway (starting with a single /)',
    )
    .describe('Where to go once signed in: a same-origin path only.'),
  prompt: z
    .enum(['login'])
    .optional()
    .describe('`login`: ask for the passkey even when already signed in (a fresh confirmation).'),
});

/** @simplewebauthn/browser's UMD bundle, served from our own origin (the page's CSP allows nothing else). */
let webauthnBundle: string | undefined;
function webauthnScript(): string {
  webauthnBundle ??= readFileSync(
    join(
      dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')),
      '..',
      'dist',
      'bundle',
      'index.umd.min.js',
    ),
    'utf8',
  );
  return webauthnBundle;
}

/**
 * Gateway accounts: people sign in with passkeys (WebAuthn, user verification required)
 * and get an HttpOnly session cookie. The connect flow sends users to GET /v1/auth/signin.
 */
@Controller('v1/auth')
export class AccountsController {
  private readonly limiter: CeremonyStartLimiter;

  constructor(
    private readonly accounts: AccountsService,
    @Inject(SERVICE_ENV) env: Env,
    clock: Clock,
  ) {
    this.limiter = new CeremonyStartLimiter(env.PASSKEY_STARTS_PER_MINUTE, clock);
  }

  @Route({
    method: 'POST',
    path: 'passkeys/registration/options',
    summary: 'Start creating a passkey',
    description:
      'A new account, or, with a signed-in session, one more passkey for it. Sets the HttpOnly ceremony cookie that binds the challenge to this browser.',
    tags,
    auth: 'none',
    body: z.strictObject({ displayName: z.string().trim().max(100).optional() }).optional(),
    success: { status: 200, schema: webauthnOptions, description: 'Creation options.' },
    errors: ['validation_failed', 'unknown_field', 'rate_limited', 'reauthentication_required'],
  })
  async registrationOptions(
    @Body() body: { displayName?: string } | undefined,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    this.limiter.take(request.ip);
    // A live session adds a passkey to its account: identity checks the session itself
    // (and that its passkey use is recent), the gateway only forwards the cookie's token.
    const { options, cookie } = await this.accounts.startRegistration(body?.displayName ?? '', request.headers.cookie);
    reply.header('set-cookie', cookie).header('cache-control', 'no-store');
    return options;
  }

  @Route({
    method: 'POST',
    path: 'passkeys/registration/verify',
    summary: 'Finish creating a passkey',
    description:
      "Verifies the authenticator's response (origin, RP ID, user verification, single-use challenge) and signs the browser in.",
    tags,
    auth: 'none',
    audit: { action: 'sign_in' },
    body: ceremonyBody,
    success: { status: 200, schema: signedIn, description: 'Signed in; the __Host-cg_session cookie is set.' },
    errors: [
      'webauthn_challenge_invalid',
      'webauthn_verification_failed',
      'conflict',
      'validation_failed',
      'unknown_field',
    ],
  })
  async registrationVerify(
    @Body() body: z.infer<typeof ceremonyBody>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    setAuditSubject(request, { actorKind: 'anonymous' });
    const result = await this.accounts.finish('registration', request.headers.cookie, body.response);
    setAuditSubject(request, {
      userId: result.userId,
      actorKind: 'user_session',
      actorId: result.userId,
      resource: result.newUser ? 'account:created' : 'passkey:added',
    });
    reply.header('set-cookie', result.cookies).header('cache-control', 'no-store');
    return { userId: result.userId, newUser: result.newUser };
  }

  @Route({
    method: 'POST',
    path: 'passkeys/authentication/options',
    summary: 'Start signing in with a passkey',
    description: 'Discoverable credentials: no user name needed. Sets the HttpOnly ceremony cookie.',
    tags,
    auth: 'none',
    body: z.strictObject({}).optional(),
    success: { status: 200, schema: webauthnOptions, description: 'Request options.' },
    errors: ['unknown_field', 'rate_limited'],
  })
  async authenticationOptions(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    this.limiter.take(request.ip);
    const { options, cookie } = await this.accounts.startAuthentication();
    reply.header('set-cookie', cookie).header('cache-control', 'no-store');
    return options;
  }

  @Route({
    method: 'POST',
    path: 'passkeys/authentication/verify',
    summary: 'Finish signing in with a passkey',
    description:
      'Verifies the assertion (single-use challenge, user verification, signature counter moved by compare-and-set) and signs the browser in.',
    tags,
    auth: 'none',
    audit: { action: 'sign_in' },
    body: ceremonyBody,
    success: { status: 200, schema: signedIn, description: 'Signed in; the __Host-cg_session cookie is set.' },
    errors: ['webauthn_challenge_invalid', 'webauthn_verification_failed', 'validation_failed', 'unknown_field'],
  })
  async authenticationVerify(
    @Body() body: z.infer<typeof ceremonyBody>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    setAuditSubject(request, { actorKind: 'anonymous' });
    const result = await this.accounts.finish('authentication', request.headers.cookie, body.response);
    setAuditSubject(request, { userId: result.userId, actorKind: 'user_session', actorId: result.userId });
    reply.header('set-cookie', result.cookies).header('cache-control', 'no-store');
    return { userId: result.userId, newUser: false };
  }

  @Route({
    method: 'GET',
    path: 'session',
    summary: 'The signed-in user',
    tags,
    auth: 'user_session',
    success: { status: 200, schema: sessionSchema, description: 'Who is signed in, until when.' },
    errors: ['unauthenticated'],
  })
  session(@CurrentUser() user: SessionUser, @Res({ passthrough: true }) reply: FastifyReply) {
    reply.header('cache-control', 'no-store');
    return {
      userId: user.userId,
      displayName: user.displayName,
      expiresAt: user.sessionExpiresAt.toISOString(),
      authenticatedAt: user.authenticatedAt.toISOString(),
    };
  }

  @Route({
    method: 'DELETE',
    path: 'session',
    summary: 'Sign out',
    description: 'Ends the session server-side and clears the cookie.',
    tags,
    auth: 'user_session',
    success: { status: 204, description: 'Signed out.' },
    errors: ['unauthenticated'],
  })
  async signOut(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    reply.header('set-cookie', await this.accounts.signOut(request.headers.cookie));
  }

  @Route({
    method: 'GET',
    path: 'signin',
    summary: 'The sign-in page',
    description:
      'Sign in with a passkey or create an account with a new one, then go to return_to (a same-origin path; anything else is refused).',
    tags,
    auth: 'none',
    query: signinQuery,
    success: { status: 200, schema: z.string(), contentType: 'text/html', description: 'An HTML page.' },
    errors: ['validation_failed', 'unknown_field'],
  })
  signinPage(@Query() query: z.infer<typeof signinQuery>, @Res({ passthrough: true }) reply: FastifyReply) {
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', SIGNIN_CSP)
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'same-origin')
      .header('cache-control', 'no-store');
    return renderSigninPage(safeReturnTo(query.return_to ?? '/v1/auth/signin') ?? '/v1/auth/signin', {
      forceLogin: query.prompt === 'login',
    });
  }

  @Route({
    method: 'GET',
    path: 'assets/signin.js',
    summary: "The sign-in page's script",
    tags,
    auth: 'none',
    success: { status: 200, schema: z.string(), contentType: 'text/javascript', description: 'JavaScript.' },
    errors: [],
  })
  signinScript(@Res({ passthrough: true }) reply: FastifyReply) {
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300');
    return SIGNIN_SCRIPT;
  }

  @Route({
    method: 'GET',
    path: 'assets/webauthn.js',
    summary: '@simplewebauthn/browser (UMD bundle)',
    tags,
    auth: 'none',
    success: { status: 200, schema: z.string(), contentType: 'text/javascript', description: 'JavaScript.' },
    errors: [],
  })
  webauthnScript(@Res({ passthrough: true }) reply: FastifyReply) {
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600');
    return webauthnScript();
  }
}
