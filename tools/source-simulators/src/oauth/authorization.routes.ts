import type { FastifyInstance, FastifyReply } from 'fastify';

import { cookie, param, str } from '../http.js';
import type { SimContext } from '../simulator-context.js';
import { consentPage, errorPage, loginPage } from './pages.js';

/**
 * The authorization endpoint and the pages behind it: the source's login form (its own
 * test accounts), then a consent page listing the requested scopes, then a redirect to
 * the client's exact redirect_uri with `code` or `error`, `state` and (where the source
 * does RFC 9207) `iss`.
 */
export function registerAuthorization(app: FastifyInstance, ctx: SimContext): void {
  const { provider, store } = ctx;
  const sessionCookie = `sim_session_${provider.name}`;

  const html = (reply: FastifyReply, status: number, body: string) =>
    reply
      .code(status)
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(body);

  const redirectBack = (reply: FastifyReply, redirectUri: string, params: Record<string, string | undefined>) => {
    const target = new URL(redirectUri);
    for (const [k, v] of Object.entries(params)) if (v !== undefined) target.searchParams.set(k, v);
    if (provider.issParameter) target.searchParams.set('iss', ctx.url);
    return reply.header('cache-control', 'no-store').redirect(target.toString(), 302);
  };

  const hint = () =>
    `Test accounts: ${provider.defaultAccounts.map((a) => `${a.login} / ${a.password ?? 'password'}`).join(', ')}.`;

  const showConsent = (reply: FastifyReply, requestId: string, clientName: string, login: string, scopes: string[]) =>
    html(
      reply,
      200,
      consentPage({
        title: provider.title,
        requestId,
        clientName,
        login,
        scopes: scopes.map((scope) => ({ scope, description: provider.scopes[scope] ?? scope })),
      }),
    );

  app.get(provider.authorizePath, async (req, reply) => {
    const q = req.query;
    const clientId = param(q, 'client_id');
    const client = clientId ? store.clients.get(clientId) : undefined;
    // Without a known client and an exactly registered redirect_uri there is nowhere safe
    // to send the answer, so the error is shown here (RFC 6749 §4.1.2.1).
    if (!client) return html(reply, 400, errorPage('Invalid request', 'Unknown client_id.'));
    const redirectUri = param(q, 'redirect_uri');
    if (!redirectUri || !client.redirectUris.includes(redirectUri)) {
      return html(reply, 400, errorPage('Invalid request', 'The redirect_uri is not registered for this application.'));
    }
    const state = param(q, 'state');
    if (state === null)
      return redirectBack(reply, redirectUri, { error: 'invalid_request', error_description: 'state repeated' });
    const fail = (error: string, description: string) =>
      redirectBack(reply, redirectUri, { error, error_description: description, state });

    for (const name of ['response_type', 'scope', 'code_challenge', 'code_challenge_method']) {
      if (param(q, name) === null) return fail('invalid_request', `${name} repeated`);
    }
    if (str(q, 'response_type') !== 'code')
      return fail('unsupported_response_type', 'Only response_type=code is supported.');
    const challenge = str(q, 'code_challenge');
    if (!challenge) return fail('invalid_request', 'code_challenge is required (PKCE).');
    // RFC 7636 defaults a missing method to `plain`, which is refused like an explicit one.
    if (str(q, 'code_challenge_method') !== 'S256') {
      return fail('invalid_request', 'code_challenge_method must be S256.');
    }
    if (!/^[A-Za-z0-9_-]{43}$/.test(challenge))
      return fail('invalid_request', 'code_challenge is not a base64url SHA-256.');
    const scopes = [...new Set((str(q, 'scope') ?? '').split(/[\s,]+/).filter(Boolean))];
    const unknown = scopes.filter((s) => !(s in provider.scopes));
    if (unknown.length) return fail('invalid_scope', `Unknown scope: ${unknown.join(' ')}`);

    const pending = store.startAuthorization({
      clientId: client.clientId,
      redirectUri,
      scopes,
      state,
      codeChallenge: challenge,
    });
    const account = ctx.accounts.byAccountId(store.sessionAccount(cookie(req, sessionCookie)) ?? -1);
    if (account) {
      pending.accountId = account.id;
      return showConsent(reply, pending.id, client.name, account.login, scopes);
    }
    return html(
      reply,
      200,
      loginPage({ title: provider.title, requestId: pending.id, clientName: client.name, hint: hint() }),
    );
  });

  app.post('/oauth-ui/login', async (req, reply) => {
    const pending = store.pendingAuthorization(str(req.body, 'request_id'));
    if (!pending)
      return html(
        reply,
        400,
        errorPage('Sign-in expired', 'This sign-in request is unknown or expired. Start again from the application.'),
      );
    const client = store.clients.get(pending.clientId);
    // Clients are never unregistered, so a pending authorization's client is always there.
    if (!client) throw new Error(`pending authorization ${pending.id} names unknown client ${pending.clientId}`);
    const account = ctx.accounts.byLoginName(str(req.body, 'login') ?? '');
    if (!account || account.password !== (str(req.body, 'password') ?? '')) {
      return html(
        reply,
        401,
        loginPage({
          title: provider.title,
          requestId: pending.id,
          clientName: client.name,
          error: 'Incorrect username or password.',
          hint: hint(),
        }),
      );
    }
    pending.accountId = account.id;
    const session = store.createSession(account.id);
    reply.header('set-cookie', `${sessionCookie}=${session}; Path=/; HttpOnly; SameSite=Lax`);
    return showConsent(reply, pending.id, client.name, account.login, pending.scopes);
  });

  app.post('/oauth-ui/consent', async (req, reply) => {
    const pending = store.pendingAuthorization(str(req.body, 'request_id'));
    if (!pending)
      return html(
        reply,
        400,
        errorPage('Request expired', 'This authorization request is unknown, expired or already decided.'),
      );
    // The decision must come from the browser that signed in for this request.
    const sessionAccount = store.sessionAccount(cookie(req, sessionCookie));
    if (pending.accountId === undefined || sessionAccount !== pending.accountId) {
      return html(reply, 403, errorPage('Not signed in', 'Sign in before deciding.'));
    }
    store.finishAuthorization(pending.id);
    const decision = str(req.body, 'decision');
    if (decision !== 'allow') {
      return redirectBack(reply, pending.redirectUri, {
        error: 'access_denied',
        error_description: 'The user denied the request.',
        state: pending.state,
      });
    }
    const code = store.issueCode(pending, pending.accountId);
    return redirectBack(reply, pending.redirectUri, { code, state: pending.state });
  });
}
