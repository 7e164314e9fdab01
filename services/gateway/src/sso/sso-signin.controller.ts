import { timestampDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';

import { AccountsService } from '../accounts/accounts.service.js';
import { safeReturnTo } from '../accounts/return-to.js';
import { setAuditSubject } from '../audit/audit-subject.js';
import { COOKIES, parseCookies, serializeCookie } from '../auth/cookies.js';
import { errorPage } from '../connect/connect-pages.js';
import { Route } from '../http/route.decorator.js';

const SSO_COOKIE = COOKIES.sso;
const tags = ['accounts'];
const startBody = z.strictObject({
  organization: z
    .string()
    .trim()
    .min(1)
    .max(320)
    .describe('Your work email address (its domain names the organization) or the organization’s slug.'),
  returnTo: z
    .string()
    .max(2_000)
    .refine((v) => safeReturnTo(v) !== undefined, 'must be a path on this gateway (starting with a single /)')
    .default('/v1/auth/signin')
    .describe('Where to go once signed in: a same-origin path only.'),
});

/** What a person reads when an SSO sign-in ends badly; the stable code is on the page too. */
const PAGE_ERRORS: Partial<Record<string, { title: string; message: string }>> = {
  sso_state_invalid: {
    title: 'This sign-in cannot be completed',
    message:
      'The answer from your organization does not belong to a sign-in started in this browser, or was already used.',
  },
  sso_response_invalid: {
    title: 'Your organization’s sign-in was refused',
    message: 'The answer from your organization’s identity provider did not verify.',
  },
  sso_membership_refused: {
    title: 'Not a member of this organization',
    message: 'Your identity provider account does not belong to this organization on Context Gateway.',
  },
  sso_not_configured: {
    title: 'Single sign-on is not available',
    message: 'This organization does not sign people in with single sign-on any more.',
  },
};

/**
 * "Sign in with your organization": the sign-in page asks where to go (POST start), the
 * browser leaves for the organization's IdP and comes back to the callback, which opens a
 * gateway session. identity does the OpenID Connect part; this keeps the browser binding
 * (an HttpOnly cookie) and the session cookie, as for passkeys.
 */
@Controller('v1/auth/sso')
export class SsoSignInController {
  constructor(
    private readonly rpcClient: RpcClient,
    private readonly accounts: AccountsService,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Route({
    method: 'POST',
    path: 'start',
    summary: 'Start signing in through your organization',
    description:
      "Finds the organization by email domain or slug and answers with its identity provider's authorization URL (code + PKCE S256, state, nonce); sets the HttpOnly cookie binding the sign-in to this browser.",
    tags,
    auth: 'none',
    body: startBody,
    success: {
      status: 200,
      schema: z.object({ authorizationUrl: z.string() }),
      description: 'Send the browser to authorizationUrl.',
    },
    errors: ['validation_failed', 'unknown_field', 'sso_not_configured', 'sso_issuer_invalid'],
  })
  async start(@Body() body: z.infer<typeof startBody>, @Res({ passthrough: true }) reply: FastifyReply) {
    const started = await this.rpcClient.request(rpc.identity.startSsoSignIn, body);
    const expiresAt = started.expiresAt ? timestampDate(started.expiresAt) : new Date(this.clock.now() + 600_000);
    // Lax: the IdP's redirect back is a top-level navigation from another site.
    reply
      .header(
        'set-cookie',
        serializeCookie(SSO_COOKIE, started.browserToken, {
          maxAge: (expiresAt.getTime() - this.clock.now()) / 1_000,
          sameSite: 'Lax',
        }),
      )
      .header('cache-control', 'no-store');
    return { authorizationUrl: started.authorizationUrl };
  }

  @Route({
    method: 'GET',
    path: 'callback',
    summary: "Where the organization's identity provider sends the browser back",
    description:
      'Not for apps. Checks the single-use state against this browser, the issuer, the ID token and its nonce; provisions the person on first sign-in; opens a session; redirects to returnTo.',
    tags,
    auth: 'none',
    audit: { action: 'sign_in' },
    success: { status: 303, description: 'Signed in; to returnTo.' },
    errors: ['sso_state_invalid', 'sso_response_invalid', 'sso_membership_refused', 'sso_not_configured'],
  })
  async callback(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    setAuditSubject(request, { actorKind: 'anonymous' });
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
    const cookieHeader = request.headers.cookie;
    const browserToken = parseCookies(cookieHeader).get(SSO_COOKIE) ?? '';
    // The binding cookie is spent whatever happens next.
    const cookies = [serializeCookie(SSO_COOKIE, '', { maxAge: 0, sameSite: 'Lax' })];
    try {
      if (!browserToken || query.length > 8_000) {
        throw new AppError('sso_state_invalid', 'No SSO sign-in in progress in this browser');
      }
      const done = await this.rpcClient.request(rpc.identity.finishSsoSignIn, { browserToken, callbackQuery: query });
      setAuditSubject(request, {
        orgId: done.orgId,
        userId: done.userId,
        actorKind: 'user_session',
        actorId: done.userId,
        resource: done.newUser ? 'account:created:sso' : 'session:sso',
      });
      cookies.push(await this.accounts.signedIn(done, cookieHeader));
      reply
        .status(303)
        .header('set-cookie', cookies)
        .header('cache-control', 'no-store')
        .header('location', safeReturnTo(done.returnTo) ?? '/v1/auth/signin');
      return reply.send();
    } catch (error) {
      const appError = AppError.from(error);
      const view = PAGE_ERRORS[appError.code];
      if (!view) this.logger.error({ err: { code: appError.code, message: appError.message } }, 'SSO callback failed');
      else this.logger.info({ errorCode: appError.code, detail: appError.message }, 'SSO sign-in refused');
      reply
        .status(view ? appError.status : 502)
        .header('set-cookie', cookies)
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .header('x-frame-options', 'DENY')
        .header(
          'content-security-policy',
          "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
        );
      return reply.send(
        errorPage(
          view?.title ?? 'Sign-in failed',
          view?.message ?? 'Something went wrong on our side. Try again in a moment.',
          appError.code,
        ),
      );
    }
  }
}
