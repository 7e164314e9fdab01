import { Readable } from 'node:stream';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { assertRecentPasskeyUse, LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';

import { AccountsService, type SignedInPerson } from '../accounts/accounts.service.js';
import { type AuditSubject, setAuditSubject, setHandledFailure } from '../audit/audit-subject.js';
import { COOKIES, serializeCookie } from '../auth/cookies.js';
import { assertCsrfToken, issueCsrfToken } from '../auth/csrf.js';
import type { Env } from '../env.js';
import { htmlPageHeaders } from '../http/html.js';
import { Route } from '../http/route.decorator.js';
import { connectionParams, userGrantParams } from '../records/records.schemas.js';
import { IMPORT_ERRORS, importSuccess } from '../sync/sync.schemas.js';
import { SyncService, takesImports } from '../sync/sync.service.js';
import { PortalService } from './portal.service.js';
import { PortalExport } from './portal-export.js';
import {
  accountDeletedPage,
  ACTIVITY_CSP,
  ACTIVITY_SCRIPT,
  activityPage,
  deleteAccountPage,
  deletePage,
  exportLinkPage,
  IMPORT_CSP,
  IMPORT_SCRIPT,
  importPage,
  overviewPage,
  PORTAL_CSP,
  PORTAL_STYLESHEET,
  portalErrorPage,
  reconnectPage,
  rulesPage,
  SECURITY_CSP,
  SECURITY_SCRIPT,
  securityPage,
} from './portal-pages.js';

const tags = ['portal'];
const csrfForm = z.strictObject({ csrf: z.string().min(1).max(128) });
const deleteForm = z.strictObject({ csrf: z.string().min(1).max(128), confirm: z.literal('yes') });
const NOTICES = [
  'revoked',
  'deleted',
  'deleting',
  'confirmed',
  'rule_added',
  'rule_removed',
  'passkey_added',
  'passkey_removed',
  'passkey_renamed',
  'passkey_trusted',
  'passkey_untrusted',
  'reconnected',
  'reconnect_failed',
  'signed_out_others',
] as const;
const noticeQuery = z.strictObject({
  notice: z.enum(NOTICES).optional().describe('What just happened, in words.'),
});
const ruleForm = z.strictObject({
  csrf: z.string().min(1).max(128),
  effect: z.enum(['allow', 'deny']),
  target: z
    .string()
    .max(300)
    .regex(/^(integration|capability):[a-z0-9][a-z0-9_:.-]*$/),
  applicationId: z.union([z.literal(''), z.uuid()]).optional(),
  resource: z.string().trim().max(500).optional(),
});
const ruleParams = z.strictObject({ ruleId: z.uuid() });
const passkeyParams = z.strictObject({ passkeyId: z.uuid() });
/** A WebAuthn credential id, base64url as browsers report it. */
const credentialId = z
  .string()
  .min(1)
  .max(1400)
  .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url');
const trustOptionsBody = z.strictObject({ credentialId });
const reconnectedQuery = z.strictObject({
  connectionId: z.uuid().optional(),
  error: z.enum(['access_denied', 'source_error', 'conflict']).optional(),
});
const trustOptionsAnswer = z.union([
  z.object({ needed: z.literal(false) }),
  z.object({
    needed: z.literal(true),
    nonce: z.string(),
    notAfter: z.string(),
    options: z.object({
      challenge: z.string(),
      allowCredentials: z.array(z.object({ id: z.string(), type: z.literal('public-key') })),
      userVerification: z.literal('required'),
      timeout: z.number(),
    }),
  }),
]);
const trustBody = z.strictObject({
  credentialId,
  nonce: z.string().min(1).max(128),
  notAfter: z.iso.datetime(),
  /** AuthenticationResponseJSON from the browser; the Personal Server checks it. */
  response: z.record(z.string(), z.unknown()),
});
const renameForm = z.strictObject({
  csrf: z.string().min(1).max(128),
  name: z
    .string()
    .trim()
    .min(1)
    .max(64)
    // eslint-disable-next-line no-control-regex -- control characters are what is refused
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must be one line of text'),
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
  'POST /account/connections/:connectionId/reconnect',
  'POST /account/sign-out',
  'POST /account/rules',
  'POST /account/rules/:ruleId/delete',
  'POST /account/passkeys/:passkeyId/remove',
  'POST /account/passkeys/:passkeyId/rename',
  'POST /account/sessions/sign-out-others',
  'POST /account/delete',
];

/** A static file of the portal's, from this origin (the pages' CSP allows nothing else). */
function asset(reply: FastifyReply, type: 'text/css' | 'text/javascript', body: string): FastifyReply {
  return reply
    .type(`${type}; charset=utf-8`)
    .header('cache-control', 'public, max-age=300')
    .header('x-content-type-options', 'nosniff')
    .send(body);
}

type Person = SignedInPerson & { displayName: string; authenticatedAt: Date };

/** The audit entry of a portal request: the person acting for themselves, with what it is about. */
function auditAsPerson(
  request: FastifyRequest,
  person: Person,
  about: Omit<AuditSubject, 'actorKind' | 'actorId' | 'userId'> = {},
): void {
  setAuditSubject(request, { ...about, userId: person.userId, actorKind: 'user_session', actorId: person.userId });
}

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
  readonly #stepUpMaxAgeMs: number;
  readonly #importMaxBytes: number;

  constructor(
    private readonly portal: PortalService,
    private readonly exporter: PortalExport,
    private readonly sync: SyncService,
    private readonly accounts: AccountsService,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(SERVICE_ENV) env: Pick<Env, 'PERSON_STEP_UP_MAX_AGE_MS' | 'IMPORT_MAX_BYTES'>,
  ) {
    this.#stepUpMaxAgeMs = env.PERSON_STEP_UP_MAX_AGE_MS;
    this.#importMaxBytes = env.IMPORT_MAX_BYTES;
  }

  @Route({
    method: 'GET',
    path: '',
    summary: 'Your connections (portal page)',
    description: 'Signed out: 303 to the passkey sign-in page, then back here.',
    tags,
    auth: 'none',
    query: noticeQuery,
    success: page('The portal overview.'),
    errors: ['validation_failed', 'unknown_field'],
  })
  async overview(
    @Query() query: z.infer<typeof noticeQuery>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.asPerson(request, reply, '/account', async (person) => {
      const connections = await this.portal.connections(person);
      return overviewPage({
        displayName: person.displayName,
        connections,
        csrf: issueCsrfToken(request, reply),
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
    audit: { action: 'audit_read' },
    success: page('The access log page.'),
    errors: [],
  })
  async activity(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.asPerson(
      request,
      reply,
      '/account/activity',
      async (person) => {
        auditAsPerson(request, person);
        const [accesses, logKey] = await Promise.all([this.portal.accesses(person), this.portal.logKey()]);
        return activityPage({
          accesses,
          logKey,
          userId: person.userId,
          now: this.clock.now(),
          csrf: issueCsrfToken(request, reply),
        });
      },
      ACTIVITY_CSP,
    );
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
      return deletePage({ connection, csrf: issueCsrfToken(request, reply) });
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
      auditAsPerson(request, person, {
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
      auditAsPerson(request, person, {
        connectionId: params.connectionId,
        applicationId: params.applicationId,
      });
      await this.portal.revoke(person, params.connectionId, params.applicationId);
      return '/account?notice=revoked';
    });
  }

  @Route({
    method: 'GET',
    path: 'rules',
    summary: 'Your own policy rules (portal page)',
    tags,
    auth: 'none',
    query: noticeQuery,
    success: page('Your rules and the form to add one.'),
    errors: ['validation_failed', 'unknown_field'],
  })
  async rules(@Query() query: z.infer<typeof noticeQuery>, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.asPerson(request, reply, '/account/rules', async (person) => {
      const connections = await this.portal.connections(person);
      const applications = new Map(
        connections.flatMap((c) => c.grants.map((g) => [g.applicationId, g.applicationName] as const)),
      );
      return rulesPage({
        rules: await this.portal.rules(person, connections),
        targets: this.portal.ruleTargets(connections),
        applications: [...applications].map(([id, name]) => ({ id, name })),
        csrf: issueCsrfToken(request, reply),
        notice: query.notice,
      });
    });
  }

  @Route({
    method: 'POST',
    path: 'rules',
    summary: 'Add one of your rules (portal form)',
    description: 'Needs a passkey use within the last few minutes; otherwise 303 to the passkey page first.',
    tags,
    auth: 'none',
    body: ruleForm,
    audit: { action: 'policy_change' },
    success: redirect('To your rules, saying what happened.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field'],
  })
  async addRule(@Body() form: z.infer<typeof ruleForm>, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.act(request, reply, form.csrf, '/account/rules?notice=confirmed', async (person) => {
      const [kind, ...rest] = form.target.split(':');
      auditAsPerson(request, person, {
        ...(kind === 'capability' ? { capability: rest.join(':') } : { integration: rest.join(':') }),
      });
      this.assertRecent(person);
      await this.portal.addRule(person, {
        effect: form.effect,
        target: form.target,
        ...(form.applicationId ? { applicationId: form.applicationId } : {}),
        ...(form.resource ? { resource: form.resource } : {}),
      });
      return '/account/rules?notice=rule_added';
    });
  }

  @Route({
    method: 'POST',
    path: 'rules/:ruleId/delete',
    summary: 'Remove one of your rules (portal form)',
    description: 'Needs a passkey use within the last few minutes; otherwise 303 to the passkey page first.',
    tags,
    auth: 'none',
    params: ruleParams,
    body: csrfForm,
    audit: { action: 'policy_change' },
    success: redirect('To your rules, saying what happened.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field', 'not_found'],
  })
  async removeRule(
    @Param() params: z.infer<typeof ruleParams>,
    @Body() form: z.infer<typeof csrfForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.act(request, reply, form.csrf, '/account/rules?notice=confirmed', async (person) => {
      auditAsPerson(request, person, {
        resource: `policy_rule:${params.ruleId}`,
      });
      this.assertRecent(person);
      await this.portal.removeRule(person, params.ruleId);
      return '/account/rules?notice=rule_removed';
    });
  }

  @Route({
    method: 'GET',
    path: 'security',
    summary: 'Your passkeys and sessions (portal page)',
    tags,
    auth: 'none',
    query: noticeQuery,
    success: page('Passkeys (add, remove) and sessions (sign out the others).'),
    errors: ['validation_failed', 'unknown_field'],
  })
  async security(
    @Query() query: z.infer<typeof noticeQuery>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.asPerson(
      request,
      reply,
      '/account/security',
      async (person) => {
        const { passkeys, sessions } = await this.portal.security(person);
        return securityPage({ passkeys, sessions, csrf: issueCsrfToken(request, reply), notice: query.notice });
      },
      SECURITY_CSP,
    );
  }

  @Route({
    method: 'POST',
    path: 'passkeys/:passkeyId/remove',
    summary: 'Remove one of your passkeys (portal form)',
    description:
      'Never the last one (409 conflict). Needs a passkey use within the last few minutes; otherwise 303 to the passkey page first.',
    tags,
    auth: 'none',
    params: passkeyParams,
    body: csrfForm,
    audit: { action: 'admin_change' },
    success: redirect('To the security page, saying what happened.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field', 'not_found', 'conflict'],
  })
  async removePasskey(
    @Param() params: z.infer<typeof passkeyParams>,
    @Body() form: z.infer<typeof csrfForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.act(request, reply, form.csrf, '/account/security?notice=confirmed', async (person) => {
      auditAsPerson(request, person, {
        resource: `passkey:${params.passkeyId}`,
      });
      await this.portal.removePasskey(person, params.passkeyId);
      return '/account/security?notice=passkey_removed';
    });
  }

  @Route({
    method: 'POST',
    path: 'passkeys/:passkeyId/rename',
    summary: 'Name one of your passkeys (portal form)',
    tags,
    auth: 'none',
    params: passkeyParams,
    body: renameForm,
    audit: { action: 'admin_change' },
    success: redirect('To the security page, saying what happened.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field', 'not_found'],
  })
  async renamePasskey(
    @Param() params: z.infer<typeof passkeyParams>,
    @Body() form: z.infer<typeof renameForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.act(request, reply, form.csrf, '/account/security', async (person) => {
      auditAsPerson(request, person, { resource: `passkey:${params.passkeyId}` });
      await this.portal.renamePasskey(person, params.passkeyId, form.name);
      return '/account/security?notice=passkey_renamed';
    });
  }

  @Route({
    method: 'POST',
    path: 'connections/:connectionId/reconnect',
    summary: 'Sign in to the source again for one of your connections (portal form)',
    description:
      "For a connection that needs it (`needs_reauth`): a page with the link on to the source's sign-in (and the " +
      'browser-binding state cookie), which renews the access and comes back to `/account/reconnected`. No application is involved and no grant ' +
      'changes. OAuth sources only. Needs a passkey use within the last few minutes; otherwise 303 to the passkey page first.',
    tags,
    auth: 'none',
    params: connectionParams,
    body: csrfForm,
    audit: { action: 'admin_change' },
    success: page("A link on to the source's sign-in (a form's answer may not leave for another site)."),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field', 'connection_not_found'],
  })
  async reconnect(
    @Param() params: z.infer<typeof connectionParams>,
    @Body() form: z.infer<typeof csrfForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.act(request, reply, form.csrf, '/account', async (person) => {
      auditAsPerson(request, person, { connectionId: params.connectionId });
      const connection = await this.portal.ownConnection(person, params.connectionId);
      const started = await this.portal.reconnect(person, params.connectionId);
      // Lax: the source sends the browser back with a top-level cross-site GET.
      reply.header(
        'set-cookie',
        serializeCookie(COOKIES.connectState, started.oauthState, { maxAge: 600, sameSite: 'Lax' }),
      );
      return { html: reconnectPage(connection?.integrationName ?? 'the source', started.redirectUrl) };
    });
  }

  @Route({
    method: 'GET',
    path: 'reconnected',
    summary: 'Where a reconnect comes back (portal)',
    description:
      "The connect flow's end for a person-started reconnect: 303 to the overview, saying how it went (read from the " +
      "person's own connection, not taken from the query).",
    tags,
    auth: 'none',
    query: reconnectedQuery,
    success: redirect('To the overview, with a notice.'),
    errors: ['validation_failed', 'unknown_field'],
  })
  async reconnected(
    @Query() query: z.infer<typeof reconnectedQuery>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.asPerson(request, reply, '/account', async (person) => {
      const connection =
        query.connectionId && !query.error ? await this.portal.ownConnection(person, query.connectionId) : undefined;
      this.redirect(reply, `/account?notice=${connection?.status === 'active' ? 'reconnected' : 'reconnect_failed'}`);
      return undefined;
    });
  }

  @Route({
    method: 'POST',
    path: 'passkeys/trust/options',
    summary: 'What a trusted passkey signs to have your Personal Server trust another (portal, JSON)',
    description:
      "The person's own call (session cookie, `x-csrf-token` from the page). `needed: false` when nothing is pinned yet " +
      '(the first consent pins every passkey) or the passkey is trusted already; otherwise WebAuthn request options ' +
      'whose challenge covers the new passkey and its key, for one of the trusted passkeys (`allowCredentials`).',
    tags,
    auth: 'none',
    body: trustOptionsBody,
    success: { status: 200, schema: trustOptionsAnswer, description: 'The options, or that none are needed.' },
    errors: ['unauthenticated', 'csrf_invalid', 'validation_failed', 'unknown_field', 'not_found'],
  })
  async trustOptions(@Body() body: z.infer<typeof trustOptionsBody>, @Req() request: FastifyRequest) {
    return this.portal.trustOptions(await this.scriptPerson(request), body.credentialId);
  }

  @Route({
    method: 'POST',
    path: 'passkeys/trust',
    summary: 'Have your Personal Server trust one more of your passkeys (portal, JSON)',
    description:
      'The endorsement signed by a passkey the Personal Server trusts (the options above); the Personal Server ' +
      'verifies it against the new passkey it reads from identity itself, and pins it.',
    tags,
    auth: 'none',
    body: trustBody,
    audit: { action: 'admin_change' },
    success: { status: 200, schema: z.object({ trusted: z.boolean() }), description: 'Whether it is trusted now.' },
    errors: [
      'unauthenticated',
      'csrf_invalid',
      'validation_failed',
      'unknown_field',
      'not_found',
      'passkey_signature_invalid',
    ],
  })
  async trust(@Body() body: z.infer<typeof trustBody>, @Req() request: FastifyRequest) {
    const person = await this.scriptPerson(request);
    auditAsPerson(request, person, { resource: 'passkey_trust' });
    const trusted = await this.portal.trust(person, body.credentialId, {
      nonce: body.nonce,
      notAfter: new Date(body.notAfter),
      assertionJson: JSON.stringify(body.response),
    });
    return { trusted };
  }

  @Route({
    method: 'POST',
    path: 'sessions/sign-out-others',
    summary: 'Sign out every other session (portal form)',
    tags,
    auth: 'none',
    body: csrfForm,
    audit: { action: 'admin_change' },
    success: redirect('To the security page, saying what happened.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field'],
  })
  async signOutOthers(
    @Body() form: z.infer<typeof csrfForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.act(request, reply, form.csrf, '/account/security', async (person) => {
      auditAsPerson(request, person, {
        resource: 'sessions:others',
      });
      await this.portal.signOutOthers(person);
      return '/account/security?notice=signed_out_others';
    });
  }

  @Route({
    method: 'GET',
    path: 'connections/:connectionId/import',
    summary: 'Upload an export into your connection (portal page)',
    tags,
    auth: 'none',
    params: connectionParams,
    success: page('The file picker, the progress bar and the outcome.'),
    errors: ['validation_failed', 'connection_not_found'],
  })
  async importForm(
    @Param() params: z.infer<typeof connectionParams>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    const here = `/account/connections/${params.connectionId}/import`;
    return this.asPerson(
      request,
      reply,
      here,
      async (person) =>
        importPage({
          connection: await this.importable(person, params.connectionId),
          csrf: issueCsrfToken(request, reply),
          maxBytes: this.#importMaxBytes,
        }),
      IMPORT_CSP,
    );
  }

  @Route({
    method: 'POST',
    path: 'connections/:connectionId/imports',
    summary: 'Upload an export into your own connection (portal, text/csv)',
    description:
      "The person's own upload (the session cookie, from this gateway's pages only): the same import as " +
      '`POST /v1/connections/{id}/imports`, into a connection of theirs that takes exports (Netflix).',
    tags,
    auth: 'none',
    params: connectionParams,
    success: importSuccess,
    errors: [...IMPORT_ERRORS, 'csrf_invalid'],
  })
  async importUpload(@Param() params: z.infer<typeof connectionParams>, @Req() request: FastifyRequest) {
    const person = await this.accounts.optionalSession(request.headers.cookie);
    if (!person) throw new AppError('unauthenticated', 'Not signed in');
    auditAsPerson(request, person, { connectionId: params.connectionId });
    const token = request.headers['x-csrf-token'];
    assertCsrfToken(request, typeof token === 'string' ? token : '');
    const connection = await this.importable(person, params.connectionId);
    const length = request.headers['content-length'] ? Number(request.headers['content-length']) : undefined;
    return this.sync.importInto(
      { id: connection.id, userId: person.userId, integration: connection.integration },
      request.body,
      Number.isFinite(length) ? length : undefined,
    );
  }

  @Route({
    method: 'GET',
    path: 'assets/import.js',
    summary: "The upload page's script (sends the file with a progress bar)",
    tags,
    auth: 'none',
    success: { status: 200, schema: z.string(), contentType: 'text/javascript', description: 'JavaScript.' },
    errors: [],
  })
  importScript(@Res() reply: FastifyReply) {
    return asset(reply, 'text/javascript', IMPORT_SCRIPT);
  }

  @Route({
    method: 'GET',
    path: 'export',
    summary: 'Download everything of yours (portal, JSON)',
    description:
      'Your account, passkeys and sessions (no secrets), your rules, and every connection with its grants and all its records, ' +
      'decrypted by your Personal Server; streamed as one JSON document (an attachment). Needs a passkey use within the last few minutes; ' +
      'otherwise 303 to the passkey page, then back here.',
    tags,
    auth: 'none',
    audit: { action: 'data_query' },
    success: {
      status: 200,
      schema: z.string(),
      contentType: 'application/json',
      description: 'The export (format `context-gateway-export/1`).',
    },
    errors: [],
  })
  async exportAll(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    setAuditSubject(request, { actorKind: 'anonymous' });
    return this.asPerson(request, reply, '/account/export', async (person) => {
      auditAsPerson(request, person, { resource: `account:${person.userId}` });
      // Only this gateway's own pages (or the address bar) start a download of everything:
      // a link or redirect from another site carries the Lax session cookie too.
      // (An identity provider sending the browser back after a sign-in makes it cross-site
      // too: the person gets the link on a page of ours instead, one click away.)
      const site = request.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin' && site !== 'none')
        return exportLinkPage(issueCsrfToken(request, reply));
      this.assertRecent(person);
      const stream = Readable.from(await this.exporter.prepare(person, this.clock.date()));
      stream.on('error', (error: unknown) =>
        // Headers are gone by then: the download ends short, and the log says why.
        this.logger.error({ errorCode: AppError.from(error).code }, 'portal export failed part-way'),
      );
      const day = this.clock.date().toISOString().slice(0, 10);
      reply
        .status(200)
        .type('application/json; charset=utf-8')
        .header('content-disposition', `attachment; filename="context-gateway-export-${day}.json"`)
        .header('cache-control', 'no-store')
        .header('x-content-type-options', 'nosniff')
        .send(stream);
      return undefined;
    });
  }

  @Route({
    method: 'GET',
    path: 'delete',
    summary: 'Confirm deleting your account (portal page)',
    tags,
    auth: 'none',
    success: page('What is destroyed and what is kept, and the confirmation form.'),
    errors: [],
  })
  async confirmDeleteAccount(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.asPerson(request, reply, '/account/delete', async (person) =>
      deleteAccountPage({ connections: await this.portal.connections(person), csrf: issueCsrfToken(request, reply) }),
    );
  }

  @Route({
    method: 'POST',
    path: 'delete',
    summary: 'Delete your account (portal form)',
    description:
      'Deletes every connection (records crypto-shredded, grants revoked), your rules, OAuth grants, passkeys and sessions; the audit log is kept. ' +
      'Needs a passkey use within the last few minutes; otherwise 303 to the passkey page, then back to the confirmation.',
    tags,
    auth: 'none',
    body: deleteForm,
    audit: { action: 'revocation' },
    success: redirect('To the page saying the account is deleted.'),
    errors: ['csrf_invalid', 'validation_failed', 'unknown_field'],
  })
  async deleteAccount(
    @Body() form: z.infer<typeof deleteForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.act(request, reply, form.csrf, '/account/delete', async (person) => {
      auditAsPerson(request, person, { resource: `account:${person.userId}` });
      // Checked before the first deletion, so an old session never leaves the account half deleted.
      this.assertRecent(person);
      const deleted = await this.portal.deleteAccount(person);
      this.logger.info(deleted, 'portal: account deleted');
      reply.header('set-cookie', await this.accounts.signOut(request.headers.cookie));
      return '/account/deleted';
    });
  }

  @Route({
    method: 'GET',
    path: 'deleted',
    summary: 'Your account is deleted (portal page)',
    tags,
    auth: 'none',
    success: page('Says the account is gone; no one is signed in.'),
    errors: [],
  })
  accountDeleted(@Res() reply: FastifyReply) {
    htmlPageHeaders(reply, PORTAL_CSP).status(200).send(accountDeletedPage());
    return reply;
  }

  @Route({
    method: 'GET',
    path: 'assets/activity.js',
    summary: "The access log's script (checks each entry's proof in the browser)",
    tags,
    auth: 'none',
    success: { status: 200, schema: z.string(), contentType: 'text/javascript', description: 'JavaScript.' },
    errors: [],
  })
  activityScript(@Res() reply: FastifyReply) {
    return asset(reply, 'text/javascript', ACTIVITY_SCRIPT);
  }

  @Route({
    method: 'GET',
    path: 'assets/security.js',
    summary: "The security page's script (adds a passkey)",
    tags,
    auth: 'none',
    success: { status: 200, schema: z.string(), contentType: 'text/javascript', description: 'JavaScript.' },
    errors: [],
  })
  securityScript(@Res() reply: FastifyReply) {
    return asset(reply, 'text/javascript', SECURITY_SCRIPT);
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
      assertCsrfToken(request, form.csrf);
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
    return asset(reply, 'text/css', PORTAL_STYLESHEET);
  }

  /** Renders a page for the signed-in person; signed out, the passkey page first and back to `here`. */
  /**
   * Answers for the signed-in person: `respond` returns a page's HTML, or undefined when it
   * sent the answer itself (a download). Signed out: the passkey page first and back to
   * `here`; a passkey use too old for what `respond` does: confirm with it, then back.
   */
  private async asPerson(
    request: FastifyRequest,
    reply: FastifyReply,
    here: string,
    respond: (person: Person) => Promise<string | undefined>,
    csp = PORTAL_CSP,
  ) {
    try {
      const person = await this.accounts.optionalSession(request.headers.cookie);
      if (!person) {
        setHandledFailure(request, new AppError('unauthenticated', 'Not signed in'));
        return this.redirect(reply, `/v1/auth/signin?return_to=${encodeURIComponent(here)}`);
      }
      const body = await respond(person);
      if (body !== undefined) htmlPageHeaders(reply, csp).status(200).send(body);
      return reply;
    } catch (error) {
      if (error instanceof AppError && error.code === 'reauthentication_required') {
        setHandledFailure(request, error);
        return this.redirect(reply, `/v1/auth/signin?prompt=login&return_to=${encodeURIComponent(here)}`);
      }
      return this.error(reply, error);
    }
  }

  /** A form post that changes something: CSRF, a session, and a passkey use recent enough (else confirm first). */
  private async act(
    request: FastifyRequest,
    reply: FastifyReply,
    csrf: string,
    afterConfirm: string,
    /** Where to go next (303), or a page to show (`{ html }`). */
    run: (person: Person) => Promise<string | { html: string }>,
  ) {
    setAuditSubject(request, { actorKind: 'anonymous' });
    try {
      assertCsrfToken(request, csrf);
      const person = await this.accounts.optionalSession(request.headers.cookie);
      if (!person) throw new AppError('unauthenticated', 'Not signed in');
      const next = await run(person);
      if (typeof next === 'string') return this.redirect(reply, next);
      return this.pageHeaders(reply).header('cache-control', 'no-store').status(200).send(next.html);
    } catch (error) {
      // Nothing was done: the audit records this request as refused, never as allowed.
      setHandledFailure(request, error);
      if (error instanceof AppError && error.code === 'reauthentication_required')
        return this.redirect(reply, `/v1/auth/signin?prompt=login&return_to=${encodeURIComponent(afterConfirm)}`);
      return this.error(reply, error);
    }
  }

  /** The person behind a portal page's script call: their session, and the page's CSRF token in `x-csrf-token`. */
  private async scriptPerson(request: FastifyRequest): Promise<Person> {
    const person = await this.accounts.optionalSession(request.headers.cookie);
    if (!person) throw new AppError('unauthenticated', 'Not signed in');
    const token = request.headers['x-csrf-token'];
    assertCsrfToken(request, typeof token === 'string' ? token : '');
    return person;
  }

  /** The person's own live connection that takes uploaded exports; anything else is not found. */
  private async importable(person: Person, connectionId: string) {
    const connection = await this.portal.ownConnection(person, connectionId);
    if (!connection || connection.status !== 'active' || !takesImports(connection.integration))
      throw new AppError('connection_not_found');
    return connection;
  }

  /** Rule changes are decided here (policy takes the person the gateway resolved): the same window as the broker's. */
  private assertRecent(person: Person): void {
    assertRecentPasskeyUse(person.authenticatedAt, this.#stepUpMaxAgeMs, this.clock.now());
  }

  private redirect(reply: FastifyReply, location: string) {
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(location, 303);
    return reply;
  }

  private error(reply: FastifyReply, error: unknown) {
    const appError = AppError.from(error);
    setHandledFailure(reply.request, error);
    // The session ended (signed out elsewhere, expired) while the page was open: sign in again.
    if (appError.code === 'unauthenticated') return this.redirect(reply, '/v1/auth/signin?return_to=%2Faccount');
    if (appError.status >= 500) this.logger.error({ err: error, errorCode: appError.code }, 'portal page failed');
    else this.logger.info({ errorCode: appError.code }, 'portal request refused');
    const words: Partial<Record<string, [string, string]>> = {
      connection_not_found: ['Not found', 'This connection does not exist, or it is not yours.'],
      not_found: ['Not found', 'This does not exist, or it is not yours.'],
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
