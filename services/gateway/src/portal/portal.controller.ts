import { randomBytes, timingSafeEqual } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import { LOGGER } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';

import { AccountsService, type SignedInPerson } from '../accounts/accounts.service.js';
import { setAuditSubject } from '../audit/audit-subject.js';
import { COOKIES, parseCookies, serializeCookie } from '../auth/cookies.js';
import { htmlPageHeaders } from '../http/html.js';
import { Route } from '../http/route.decorator.js';
import { connectionParams, userGrantParams } from '../records/records.schemas.js';
import { PortalService } from './portal.service.js';
import {
  activityPage,
  deletePage,
  overviewPage,
  PORTAL_CSP,
  PORTAL_STYLESHEET,
  portalErrorPage,
} from './portal-pages.js';

const tags = ['portal'];
const csrfForm = z.strictObject({ csrf: z.string().min(1).max(128) });
const deleteForm = z.strictObject({ csrf: z.string().min(1).max(128), confirm: z.literal('yes') });
const overviewQuery = z.strictObject({
  notice: z.enum(['revoked', 'deleted', 'deleting', 'confirmed']).optional().describe('What just happened, in words.'),
});
const page = (description: string) => ({
  status: 200,
  schema: z.string(),
  contentType: 'text/html',
  description,
});
const redirect = (description: string) => ({ status: 303, description });

/** The portal's form posts: the only routes besides the consent page that take a form. */
export const PORTAL_FORM_ROUTES = [
  'POST /account/connections/:connectionId/grants/:applicationId/revoke',
  'POST /account/connections/:connectionId/delete',
  'POST /account/sign-out',
];

type Person = SignedInPerson & { displayName: string };

/**
 * The person's portal at /account: their connections with what is stored and which
 * applications can read it (named, scopes in words), revoking one application, deleting a
 * connection (with a warning and a confirmation), and the access log of their data. Pages
 * are HTML for browsers, every action a CSRF-protected form. What changes who may read their
 * data needs a recent passkey use: the broker refuses an old session
 * (`reauthentication_required`) and the person is sent to confirm with their passkey.
 */
@Controller('account')
export class PortalController {
  constructor(
    private readonly portal: PortalService,
    private readonly accounts: AccountsService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Route({
    method: 'GET',
    path: '',
    summary: 'Your connections (portal page)',
    description: 'Signed out: 303 to the passkey sign-in page, then back here.',
    tags,
    auth: 'none',
    query: overviewQuery,
    success: page('The portal overview.'),
    errors: ['validation_failed', 'unknown_field'],
  })
  async overview(
    @Query() query: z.infer<typeof overviewQuery>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.asPerson(request, reply, '/account', async (person) => {
      const connections = await this.portal.connections(person);
      return overviewPage({
        displayName: person.displayName,
        connections,
        csrf: this.csrf(request, reply),
        notice: query.notice,
      });
    });
  }

  @Route({
    method: 'GET',
    path: 'activity',
    summary: 'Who accessed your data (portal page)',
    tags,
    auth: 'none',
    success: page('The access log page.'),
    errors: [],
  })
  async activity(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.asPerson(request, reply, '/account/activity', async (person) => {
      setAuditSubject(request, { userId: person.userId, actorKind: 'user_session', actorId: person.userId });
      return activityPage({ accesses: await this.portal.accesses(person), csrf: this.csrf(request, reply) });
    });
  }

  @Route({
    method: 'GET',
    path: 'connections/:connectionId/delete',
    summary: 'Confirm deleting a connection (portal page)',
    tags,
    auth: 'none',
    params: connectionParams,
    success: page('What is destroyed, and the confirmation form.'),
    errors: ['validation_failed', 'connection_not_found'],
  })
  async confirmDelete(
    @Param() params: z.infer<typeof connectionParams>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    const here = `/account/connections/${params.connectionId}/delete`;
    return this.asPerson(request, reply, here, async (person) => {
      const connection = (await this.portal.connections(person)).find(
        (c) => c.id === params.connectionId && c.status !== 'deleting',
      );
      if (!connection) throw new AppError('connection_not_found');
      return deletePage({ connection, csrf: this.csrf(request, reply) });
    });
  }

  @Route({
    method: 'POST',
    path: 'connections/:connectionId/delete',
    summary: 'Delete a connection (portal form)',
    description:
      'Needs a passkey use within the last few minutes; otherwise 303 to the passkey page, then back to the confirmation.',
    tags,
    auth: 'none',
    params: connectionParams,
    body: deleteForm,
    audit: { action: 'revocation' },
    success: redirect('To the overview, saying what happened.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field', 'connection_not_found'],
  })
  async remove(
    @Param() params: z.infer<typeof connectionParams>,
    @Body() form: z.infer<typeof deleteForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    const back = `/account/connections/${params.connectionId}/delete`;
    return this.act(request, reply, form.csrf, back, async (person) => {
      setAuditSubject(request, {
        userId: person.userId,
        actorKind: 'user_session',
        actorId: person.userId,
        connectionId: params.connectionId,
        resource: `connection:${params.connectionId}`,
      });
      const status = await this.portal.remove(person, params.connectionId);
      return `/account?notice=${status}`;
    });
  }

  @Route({
    method: 'POST',
    path: 'connections/:connectionId/grants/:applicationId/revoke',
    summary: "Revoke one application's access (portal form)",
    description: 'Needs a passkey use within the last few minutes; otherwise 303 to the passkey page first.',
    tags,
    auth: 'none',
    params: userGrantParams,
    body: csrfForm,
    audit: { action: 'revocation' },
    success: redirect('To the overview, saying what happened.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field', 'connection_not_found'],
  })
  async revoke(
    @Param() params: z.infer<typeof userGrantParams>,
    @Body() form: z.infer<typeof csrfForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.act(request, reply, form.csrf, '/account?notice=confirmed', async (person) => {
      setAuditSubject(request, {
        userId: person.userId,
        actorKind: 'user_session',
        actorId: person.userId,
        connectionId: params.connectionId,
        applicationId: params.applicationId,
      });
      await this.portal.revoke(person, params.connectionId, params.applicationId);
      return '/account?notice=revoked';
    });
  }

  @Route({
    method: 'POST',
    path: 'sign-out',
    summary: 'Sign out (portal form)',
    tags,
    auth: 'none',
    body: csrfForm,
    success: redirect('To the sign-in page.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field'],
  })
  async signOut(@Body() form: z.infer<typeof csrfForm>, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    try {
      this.checkCsrf(request, form.csrf);
      reply.header('set-cookie', await this.accounts.signOut(request.headers.cookie));
      return this.redirect(reply, '/v1/auth/signin?return_to=%2Faccount');
    } catch (error) {
      return this.error(reply, error);
    }
  }

  @Route({
    method: 'GET',
    path: 'assets/portal.css',
    summary: "The portal's stylesheet",
    tags,
    auth: 'none',
    success: { status: 200, schema: z.string(), contentType: 'text/css', description: 'CSS.' },
    errors: [],
  })
  stylesheet(@Res() reply: FastifyReply) {
    reply
      .type('text/css; charset=utf-8')
      .header('cache-control', 'public, max-age=3600')
      .header('x-content-type-options', 'nosniff')
      .send(PORTAL_STYLESHEET);
    return reply;
  }

  /** Renders a page for the signed-in person; signed out, the passkey page first and back to `here`. */
  private async asPerson(
    request: FastifyRequest,
    reply: FastifyReply,
    here: string,
    render: (person: Person) => Promise<string>,
  ) {
    try {
      const person = await this.accounts.optionalSession(request.headers.cookie);
      if (!person) return this.redirect(reply, `/v1/auth/signin?return_to=${encodeURIComponent(here)}`);
      const body = await render(person);
      this.pageHeaders(reply).status(200).send(body);
      return reply;
    } catch (error) {
      return this.error(reply, error);
    }
  }

  /** A form post that changes something: CSRF, a session, and a passkey use recent enough (else confirm first). */
  private async act(
    request: FastifyRequest,
    reply: FastifyReply,
    csrf: string,
    afterConfirm: string,
    run: (person: Person) => Promise<string>,
  ) {
    setAuditSubject(request, { actorKind: 'anonymous' });
    try {
      this.checkCsrf(request, csrf);
      const person = await this.accounts.optionalSession(request.headers.cookie);
      if (!person) return this.redirect(reply, '/v1/auth/signin?return_to=%2Faccount');
      return this.redirect(reply, await run(person));
    } catch (error) {
      if (error instanceof AppError && error.code === 'reauthentication_required')
        return this.redirect(reply, `/v1/auth/signin?prompt=login&return_to=${encodeURIComponent(afterConfirm)}`);
      return this.error(reply, error);
    }
  }

  private csrf(request: FastifyRequest, reply: FastifyReply): string {
    let csrf = parseCookies(request.headers.cookie).get(COOKIES.csrf);
    if (!csrf || !/^[A-Za-z0-9_-]{43}$/.test(csrf)) {
      csrf = randomBytes(32).toString('base64url');
      reply.header('set-cookie', serializeCookie(COOKIES.csrf, csrf, { maxAge: 3600, sameSite: 'Strict' }));
    }
    return csrf;
  }

  private checkCsrf(request: FastifyRequest, sent: string): void {
    const cookie = Buffer.from(parseCookies(request.headers.cookie).get(COOKIES.csrf) ?? '');
    const form = Buffer.from(sent);
    if (cookie.length === 0 || cookie.length !== form.length || !timingSafeEqual(cookie, form))
      throw new AppError('csrf_invalid');
  }

  private redirect(reply: FastifyReply, location: string) {
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(location, 303);
    return reply;
  }

  private error(reply: FastifyReply, error: unknown) {
    const appError = AppError.from(error);
    if (appError.status >= 500) this.logger.error({ err: error, errorCode: appError.code }, 'portal page failed');
    else this.logger.info({ errorCode: appError.code }, 'portal request refused');
    const words: Partial<Record<string, [string, string]>> = {
      connection_not_found: ['Not found', 'This connection does not exist, or it is not yours.'],
      csrf_invalid: ['Please try again', 'The form expired or was not sent from this page. Go back and try again.'],
    };
    const [title, message] = words[appError.code] ?? [
      appError.status >= 500 ? 'Something went wrong' : 'This cannot be done',
      appError.status >= 500 ? 'Nothing was changed. Please try again in a moment.' : appError.message,
    ];
    this.pageHeaders(reply)
      .status(appError.status)
      .send(portalErrorPage(title, message, appError.code));
    return reply;
  }

  private pageHeaders(reply: FastifyReply): FastifyReply {
    return htmlPageHeaders(reply, PORTAL_CSP);
  }
}
