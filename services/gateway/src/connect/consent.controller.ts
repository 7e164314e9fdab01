import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Body, Controller, Inject, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';

import { AccountsService, type SignedInPerson } from '../accounts/accounts.service.js';
import { COOKIES, parseCookies, serializeCookie } from '../auth/cookies.js';
import { assertCsrfToken, issueCsrfToken } from '../auth/csrf.js';
import type { Env } from '../env.js';
import { htmlPageHeaders } from '../http/html.js';
import { Route } from '../http/route.decorator.js';
import { ConnectFlowService } from './connect.service.js';
import { CONSENT_SCRIPT, consentPage, errorPage, refusedPage } from './connect-pages.js';
import { METADATA_DOCUMENT, REGISTRATION_KEY } from './registration-key.js';

/** Binds the OAuth state to the browser that left for the source. */
const STATE_COOKIE = COOKIES.connectState;

const tokenParams = z.object({ token: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'not a connect link') }).strict();
const registrationParams = z
  .object({ registrationKey: z.string().regex(REGISTRATION_KEY, 'not a registration key') })
  .strict();
const metadataDocumentParams = z
  .object({
    document: z
      .string()
      .regex(METADATA_DOCUMENT, 'not a client metadata document')
      .describe('`<registration key>.json`'),
  })
  .strict();
const clientMetadataSchema = z.object({
  client_id: z.string(),
  client_name: z.string(),
  client_uri: z.string(),
  redirect_uris: z.array(z.string()),
  grant_types: z.array(z.string()),
  response_types: z.array(z.string()),
  token_endpoint_auth_method: z.string(),
});
const consentForm = z
  .object({
    csrf: z.string().min(1).max(128),
    decision: z.enum(['allow', 'deny']),
    apiKey: z.string().max(4096).optional(),
    /** Allow: the person's passkey assertion over the page's consent challenge (the page's script sets it). */
    assertion: z.string().max(16_384).optional(),
  })
  .strict();

/** Page errors a person can meet, with the words they read. */
const PAGE_ERRORS: Partial<Record<string, { status: number; title: string; message: string }>> = {
  connect_session_invalid: {
    status: 400,
    title: 'This link cannot be used',
    message: 'This connect link is unknown or was already used.',
  },
  connect_session_expired: {
    status: 410,
    title: 'This link has expired',
    message: 'Connect links work for ten minutes. Ask the app to start again.',
  },
  oauth_state_invalid: {
    status: 400,
    title: 'This sign-in cannot be completed',
    message: 'The answer from the source does not belong to a sign-in started in this browser, or was already used.',
  },
  csrf_invalid: { status: 403, title: 'Please try again', message: 'The form expired or was not sent from this page.' },
  upstream_auth_redirect_mismatch: {
    status: 400,
    title: 'This sign-in cannot be completed',
    message:
      'The answer came from another sign-in service than the one this connection was started with, so it was not used. Start again from the app.',
  },
  connect_session_other_person: {
    status: 403,
    title: 'This link is for someone else',
    message:
      'The app made this connect link for another person. Sign in as that person, or ask the app for a link of your own.',
  },
};

/**
 * The person's side of the connect flow: the consent page, its form post, and the source's
 * callback. HTML pages; one script, which has the person's passkey sign their consent. All
 * state lives in the broker, the browser holds only HttpOnly cookies binding it to the flow.
 */
@Controller('v1/connect')
export class ConsentController {
  constructor(
    private readonly flow: ConnectFlowService,
    private readonly accounts: AccountsService,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {}

  @Route({
    method: 'GET',
    path: 'client-metadata.json',
    summary: "The gateway's Client ID Metadata Document",
    description:
      'The client id of MCP server registrations made before each had its own document (they keep it): the shared ' +
      'redirect URI `/v1/connect/callback`. New registrations use `/v1/connect/client-metadata/{key}.json`.',
    tags: ['connect'],
    auth: 'none',
    success: {
      status: 200,
      schema: clientMetadataSchema,
      description: 'The document (draft-ietf-oauth-client-id-metadata-document).',
    },
    errors: [],
  })
  clientMetadata(@Res({ passthrough: true }) reply: FastifyReply) {
    return this.metadataDocument(reply, '/v1/connect/client-metadata.json', '/v1/connect/callback');
  }

  @Route({
    method: 'GET',
    path: 'client-metadata/:document',
    summary: 'The Client ID Metadata Document of one MCP server registration',
    description:
      "Its URL is the gateway's client id at a remote MCP server's authorization server that accepts Client ID " +
      'Metadata Documents (`auth: "mcp_oauth"`): who the gateway is, and the one redirect URI of that registration ' +
      '(`/v1/connect/mcp/callback/{key}`). It states only what the URL itself says, so any well-formed key has one; ' +
      'a code sent to the URI of a key the connect session was not sent with is refused there.',
    tags: ['connect'],
    auth: 'none',
    params: metadataDocumentParams,
    success: {
      status: 200,
      schema: clientMetadataSchema,
      description: 'The document (draft-ietf-oauth-client-id-metadata-document).',
    },
    errors: ['validation_failed'],
  })
  registrationMetadata(
    @Param() params: z.infer<typeof metadataDocumentParams>,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const key = params.document.slice(0, -'.json'.length);
    return this.metadataDocument(
      reply,
      `/v1/connect/client-metadata/${params.document}`,
      `/v1/connect/mcp/callback/${key}`,
    );
  }

  private metadataDocument(reply: FastifyReply, documentPath: string, callbackPath: string) {
    reply.header('cache-control', 'public, max-age=300');
    return {
      client_id: new URL(documentPath, this.env.GATEWAY_PUBLIC_URL).href,
      client_name: 'Context Gateway',
      client_uri: new URL('/', this.env.GATEWAY_PUBLIC_URL).href,
      redirect_uris: [new URL(callbackPath, this.env.GATEWAY_PUBLIC_URL).href],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  @Route({
    method: 'GET',
    path: 'callback',
    summary: 'Where the sources send the browser back (OAuth redirect URI)',
    description:
      "Not for apps. Validates state (single use, bound to this browser), exchanges the code, then redirects to the app's callback.",
    tags: ['connect'],
    auth: 'none',
    success: { status: 302, description: "To the app's callback URL." },
    errors: ['oauth_state_invalid', 'connect_session_expired'],
  })
  callback(@Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.completeFlow(request, reply, '');
  }

  @Route({
    method: 'GET',
    path: 'mcp/callback/:registrationKey',
    summary:
      "Where an MCP server's own authorization server sends the browser back (one redirect URI per registration)",
    description:
      'Not for apps. As `/v1/connect/callback`, and the answer must come back on the redirect URI of the registration ' +
      'the connect session was sent with (`upstream_auth_redirect_mismatch` otherwise, nothing exchanged).',
    tags: ['connect'],
    auth: 'none',
    params: registrationParams,
    success: { status: 302, description: "To the app's callback URL." },
    errors: ['oauth_state_invalid', 'connect_session_expired', 'upstream_auth_redirect_mismatch'],
  })
  mcpCallback(
    @Param() params: z.infer<typeof registrationParams>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.completeFlow(request, reply, params.registrationKey);
  }

  private async completeFlow(request: FastifyRequest, reply: FastifyReply, redirectKey: string) {
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
    const cookies = parseCookies(request.headers.cookie);
    // The state cookie is spent whatever happens next.
    reply.header('set-cookie', serializeCookie(STATE_COOKIE, '', { maxAge: 0, sameSite: 'Lax' }));
    try {
      assertCallbackQuery(query);
      const person = await this.accounts.optionalPerson(request.headers.cookie);
      const result = await this.flow.complete(query, cookies.get(STATE_COOKIE) ?? '', person, redirectKey);
      return this.redirect(reply, 302, result.redirectUrl);
    } catch (error) {
      return this.page(reply, error);
    }
  }

  @Route({
    method: 'GET',
    path: 'assets/consent.js',
    summary: "The consent page's script (the passkey signs the consent)",
    tags: ['connect'],
    auth: 'none',
    success: { status: 200, schema: z.string(), contentType: 'text/javascript', description: 'JavaScript.' },
    errors: [],
  })
  consentScript(@Res({ passthrough: true }) reply: FastifyReply) {
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300');
    return CONSENT_SCRIPT;
  }

  @Route({
    method: 'GET',
    path: ':token',
    summary: 'The consent page of a connect session',
    description:
      "Opened by the user from the app's `connectUrl`: which app, which integration, each scope in plain words, Allow / Deny.",
    tags: ['connect'],
    auth: 'none',
    params: tokenParams,
    success: { status: 200, description: 'The consent page.', contentType: 'text/html' },
    errors: ['connect_session_invalid', 'connect_session_expired'],
  })
  async show(@Param() params: z.infer<typeof tokenParams>, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    try {
      return await this.render(
        reply,
        request,
        params.token,
        await this.accounts.optionalPerson(request.headers.cookie),
      );
    } catch (error) {
      return this.page(reply, error);
    }
  }

  @Route({
    method: 'POST',
    path: ':token',
    summary: 'The consent form: Allow or Deny',
    description:
      "Form post from the consent page (CSRF-protected). Allow needs the person's passkey assertion over the page's consent challenge " +
      "(`assertion`, set by the page's script), which their Personal Server verifies; without a valid one the page is shown again. " +
      'It continues at the source, or straight to the app when an existing connection already covers the scopes.',
    tags: ['connect'],
    auth: 'none',
    params: tokenParams,
    body: consentForm,
    success: { status: 303, description: "To the source's authorization page, or to the app's callback." },
    errors: [
      'connect_session_invalid',
      'connect_session_expired',
      'csrf_invalid',
      'connect_session_other_person',
      'passkey_signature_invalid',
    ],
  })
  async decide(
    @Param() params: z.infer<typeof tokenParams>,
    @Body() form: z.infer<typeof consentForm>,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    try {
      assertCsrfToken(request, form.csrf);
      const person = await this.accounts.optionalPerson(request.headers.cookie);
      if (form.decision === 'allow' && !person) {
        return this.redirect(reply, 303, this.signInUrl(params.token));
      }
      let result;
      try {
        result = await this.flow.decide(params.token, form.decision, person, form.apiKey, form.assertion);
      } catch (error) {
        // A mistyped API key: show the page again with the reason; the session stays usable.
        if (error instanceof AppError && error.code === 'validation_failed')
          return await this.render(reply, request, params.token, person, error.message);
        // No signature (script off), or one the Personal Server refused: the page again, to sign.
        if (error instanceof AppError && error.code === 'passkey_signature_invalid')
          return await this.render(
            reply,
            request,
            params.token,
            person,
            'Your passkey did not sign this consent, or its signature was not accepted. Choose Allow to sign again.',
          );
        throw error;
      }
      if (result.oauthState) {
        reply.header(
          'set-cookie',
          // Lax: the source sends the browser back with a top-level cross-site GET.
          serializeCookie(STATE_COOKIE, result.oauthState, { maxAge: 600, sameSite: 'Lax' }),
        );
      }
      if ('integrationName' in result && result.refused === 'conflict') {
        // The app hears error=conflict like any refusal, but only once the person has read why.
        this.pageHeaders(reply);
        reply
          .status(409)
          .send(
            refusedPage(
              'This account is already connected',
              `The ${result.integrationName} account you use is connected to Context Gateway through another organization, and one account connects through one organization. Use another ${result.integrationName} account, or ask the app you connected it for first.`,
              `Back to ${result.applicationName}`,
              result.redirectUrl,
              'conflict',
            ),
          );
        return reply;
      }
      return this.redirect(reply, 303, result.redirectUrl);
    } catch (error) {
      return this.page(reply, error);
    }
  }

  private signInUrl(token: string): string {
    return `/v1/auth/signin?return_to=${encodeURIComponent(`/v1/connect/${token}`)}`;
  }

  private async render(
    reply: FastifyReply,
    request: FastifyRequest,
    token: string,
    person: SignedInPerson | undefined,
    error?: string,
  ) {
    const session = await this.flow.session(token, person);
    const csrf = issueCsrfToken(request, reply);
    this.pageHeaders(reply);
    reply.status(error ? 422 : 200).send(
      consentPage({
        applicationName: session.applicationName,
        integrationName: session.integrationName,
        scopes: session.scopes,
        action: `/v1/connect/${token}`,
        csrf,
        signedIn: Boolean(person),
        signInUrl: this.signInUrl(token),
        reusesConnection: session.reusesConnection,
        apiKeyLabel: session.authType === 'api_key' ? 'Your API key' : undefined,
        fileExport: session.authType === 'file_export',
        consentChallenge: person ? session.consentChallenge : undefined,
        trustedPasskeys: person && session.consentChallenge ? await this.flow.trustedPasskeys(person.userId) : [],
        error,
      }),
    );
    return reply;
  }

  private redirect(reply: FastifyReply, status: 302 | 303, location: string) {
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(location, status);
    return reply;
  }

  private page(reply: FastifyReply, error: unknown) {
    const appError = error instanceof AppError ? error : undefined;
    const known = appError ? PAGE_ERRORS[appError.code] : undefined;
    // A request the services refused (4xx) is the browser's or the source's mistake: its own
    // status, logged briefly. Only what failed on our side is a 502 and an error in the log.
    const refused = !known && appError !== undefined && appError.status < 500;
    if (refused) {
      this.logger.info({ errorCode: appError.code }, 'connect page refused');
    } else if (!known) {
      this.logger.error(
        { err: appError ? { code: appError.code, message: appError.message } : error },
        'connect page failed',
      );
    }
    const view = known ?? {
      // A service that is down is a 503 (try again later), as on every other route; it was a 502.
      status: refused ? appError.status : appError?.status === 503 ? 503 : 502,
      title: refused ? 'This request cannot be used' : 'Something went wrong',
      message: 'The connection could not be completed. Please start again from the app.',
    };
    this.pageHeaders(reply);
    reply.status(view.status).send(errorPage(view.title, view.message, appError?.code));
    return reply;
  }

  private pageHeaders(reply: FastifyReply) {
    // Scripts from this origin only (the passkey signature); inline styles only; never framed
    // (clickjacking the Allow button). No form-action: Allow's answer redirects to the source.
    htmlPageHeaders(
      reply,
      "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
  }
}

/** The broker's bound on a callback's query string (proto catalog: completeAuthorization). */
const MAX_CALLBACK_QUERY = 8192;
/** States are ours (43 characters); anything far longer was not issued by this flow. */
const MAX_STATE = 512;

/**
 * A source's callback carries at least our state; one without a query, or with more than any
 * source sends, is refused here as what it is (an unknown state, 400) before the broker sees it.
 */
function assertCallbackQuery(query: string): void {
  const state = query.length <= MAX_CALLBACK_QUERY ? new URLSearchParams(query).get('state') : null;
  if (!state || state.length > MAX_STATE)
    throw new AppError('oauth_state_invalid', 'The callback carries no state this flow issued');
}
