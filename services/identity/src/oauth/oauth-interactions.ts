import type { IncomingMessage, ServerResponse } from 'node:http';

import type { Provider } from 'oidc-provider';

import { metadataDocumentErrorCode } from './client-metadata-documents.js';
import { oauthConsentPage, oauthErrorPage } from './consent-page.js';

/**
 * The gateway's browser session cookie (gateway auth/cookies.ts): its token is what signs a
 * person in here. Only the `__Host-` name is read: a sibling subdomain can neither set nor
 * shadow it, so no one can plant a session of their own into someone's consent (login CSRF).
 */
const SESSION_COOKIE = '__Host-cg_session';
/** Largest consent form accepted; it carries one field. */
const MAX_FORM_BYTES = 4 * 1024;

export interface InteractionDeps {
  provider: Provider;
  /** The gateway's public origin: the only Origin a consent form may be posted from. */
  publicOrigin: string;
  /** `/oauth`: the issuer's path, under which the interaction routes live. */
  issuerPath: string;
  /** The gateway's resource URI: the one resource a grant's capabilities are for. */
  resource: string;
  /** The OpenID Connect scopes the server offers (beside the applications' capabilities). */
  oidcScopes: readonly string[];
  /** The person of a live gateway session, and when they last used their passkey; undefined when not signed in. */
  resolveSession: (
    token: string,
  ) => Promise<{ userId: string; displayName: string; authenticatedAt: Date; method: string } | undefined>;
  /** The clock, in epoch milliseconds. */
  now: () => number;
  /** The application's display name, by client id. */
  applicationName: (clientId: string) => Promise<string | undefined>;
  /** Metadata-URL clients (CIMD): the person's organization's application for the URL, decided at consent. */
  metadataClients: {
    /** The active applications with this URL in the person's organizations. */
    applicationsFor: (url: string, userId: string) => Promise<MetadataClientApplication[]>;
    /** The application a grant is already bound to. */
    boundApplicationId: (grantId: string) => Promise<string | undefined>;
    bind: (grantId: string, app: { id: string; orgId: string }, accountId: string, clientId: string) => Promise<void>;
    /** Audits a refusal (`code`) of the client for this person. */
    refused: (clientId: string, userId: string, code: MetadataClientRefusal) => Promise<void>;
  };
}

/** An organization's application for a metadata URL, as consent chooses it. */
interface MetadataClientApplication {
  id: string;
  orgId: string;
  name: string;
  /** The capabilities it allows. */
  scopes: string[];
}

/**
 * Why a person may not authorize a metadata-URL client: no organization of theirs allowed it,
 * or several did (the person would have to say which; not offered yet).
 */
type MetadataClientRefusal = 'client_not_allowed' | 'client_organization_ambiguous';

const REFUSALS: Record<MetadataClientRefusal, string> = {
  client_not_allowed: 'your organization has not allowed this client',
  client_organization_ambiguous: 'several of your organizations allowed this client; ask an administrator',
};

/**
 * One cookie's value from a Cookie header; undefined when absent, and when the name comes
 * twice (an injected cookie must never decide whose session this is).
 */
function readCookie(header: string | undefined, name: string): string | undefined {
  let found: string | undefined;
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      if (found !== undefined) return undefined;
      found = part.slice(eq + 1).trim();
    }
  }
  return found;
}

/**
 * The person's side of an authorization: sign-in (the gateway's passkey session) and
 * consent. GET `<issuer>/interaction/<uid>` decides which; POST `.../<uid>` records the
 * consent decision. oidc-provider's interaction cookie binds both to the browser that
 * started the authorization.
 */
export class OAuthInteractions {
  constructor(private readonly deps: InteractionDeps) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method === 'GET') return await this.#show(req, res);
      if (req.method === 'POST') return await this.#decide(req, res);
      send(res, 405, oauthErrorPage('Not allowed', 'This page only accepts GET and POST.', 'method_not_allowed'));
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === 'SessionNotFound' || name === 'InvalidRequest') {
        send(
          res,
          400,
          oauthErrorPage(
            'This sign-in request has expired',
            'The authorization took too long or was opened in another browser.',
            'oauth_interaction_expired',
          ),
        );
        return;
      }
      throw error;
    }
  }

  async #show(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { provider } = this.deps;
    const details = await provider.interactionDetails(req, res);
    const here = `${this.deps.issuerPath}/interaction/${details.uid}`;
    const person = await this.#person(req);

    if (details.prompt.name === 'login') {
      // `prompt=login` / `max_age`: the passkey must be used after this authorization
      // asked for it. The instant it asked is kept in the interaction itself (server-side,
      // millisecond precision), so neither a crafted URL nor a sign-in in the same second
      // before it counts as fresh.
      const fresh = details.prompt.reasons.some((r) => r === 'login_prompt' || r === 'max_age');
      const stored = details as { result?: { freshAfter?: number }; lastSubmission?: { freshAfter?: number } };
      let freshAfter = stored.result?.freshAfter ?? stored.lastSubmission?.freshAfter;
      if (fresh && freshAfter === undefined) {
        freshAfter = this.deps.now();
        await provider.interactionResult(req, res, { freshAfter }, { mergeWithLastSubmission: true });
      }
      if (!person || (freshAfter !== undefined && person.authenticatedAt.getTime() <= freshAfter)) {
        const signIn = new URLSearchParams({ return_to: here });
        if (person) signIn.set('prompt', 'login');
        redirect(res, `/v1/auth/signin?${signIn.toString()}`);
        return;
      }
      await provider.interactionFinished(
        req,
        res,
        {
          login: {
            accountId: person.userId,
            ts: Math.floor(person.authenticatedAt.getTime() / 1_000),
            amr: [person.method === 'sso' ? 'fed' : 'hwk'],
          },
        },
        { mergeWithLastSubmission: false },
      );
      return;
    }

    if (details.prompt.name === 'consent') {
      // The consent belongs to whoever signed in for this authorization, not to a session
      // that changed hands since: a different person must start again.
      if (!person || person.userId !== details.session?.accountId) {
        redirect(res, `/v1/auth/signin?${new URLSearchParams({ return_to: here }).toString()}`);
        return;
      }
      const clientId = String(details.params['client_id']);
      const client = await this.#client(res, clientId);
      if (client === null) return;
      let applicationName = await this.deps.applicationName(clientId);
      let scopes = requestedScopes(details);
      if (client?.clientIdMetadataDocument) {
        const chosen = await this.#metadataClientApplication(clientId, person.userId);
        if ('refusal' in chosen) return this.#refuse(req, res, clientId, person.userId, chosen.refusal);
        // The name the client's own document gives, shown with the host that vouches for it.
        applicationName = client.clientName ?? chosen.app.name;
        // What the grant will hold: a new one when the current grant is another application's.
        if (!(await this.#reusable(details.grantId, chosen.app))) scopes = this.#grantable(details, chosen.app).all;
      }
      send(
        res,
        200,
        oauthConsentPage({
          applicationName: applicationName ?? clientId,
          redirectHost: new URL(String(details.params['redirect_uri'])).host,
          ...(client?.clientIdMetadataDocument ? { metadataHost: new URL(clientId).host } : {}),
          scopes,
          action: here,
          displayName: person.displayName,
        }),
      );
      return;
    }
    send(
      res,
      400,
      oauthErrorPage(
        'Cannot continue',
        'This authorization asks for something we do not support.',
        'oauth_unsupported_prompt',
      ),
    );
  }

  async #decide(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { provider } = this.deps;
    // A form posted from another site is refused before anything is read or recorded.
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== this.deps.publicOrigin) {
      send(
        res,
        403,
        oauthErrorPage('Refused', 'This form can only be sent from Context Gateway itself.', 'origin_refused'),
      );
      return;
    }
    const form = new URLSearchParams(await readBody(req, MAX_FORM_BYTES));
    const details = await provider.interactionDetails(req, res);
    const person = await this.#person(req);
    const accountId = details.session?.accountId;
    if (details.prompt.name !== 'consent' || !person || !accountId || person.userId !== accountId) {
      send(res, 400, oauthErrorPage('Cannot continue', 'Sign in again from the app.', 'oauth_interaction_invalid'));
      return;
    }
    if (form.get('decision') !== 'allow') {
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'The person denied the request' },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    const clientId = String(details.params['client_id']);
    const client = await this.#client(res, clientId);
    if (client === null) return;
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    // A metadata-URL client: decided again now (the person's organizations may have changed
    // since the page was shown), and a grant bound to another application is not reused.
    let bindTo: MetadataClientApplication | undefined;
    let reuse = details.grantId;
    let add = {
      oidcScopes: missing.missingOIDCScope ?? [],
      resourceScopes: Object.entries(missing.missingResourceScopes ?? {}),
    };
    if (client?.clientIdMetadataDocument) {
      const chosen = await this.#metadataClientApplication(clientId, accountId);
      if ('refusal' in chosen) return this.#refuse(req, res, clientId, accountId, chosen.refusal);
      bindTo = chosen.app;
      if (!(await this.#reusable(reuse, bindTo))) {
        // A new grant: everything requested that this application allows, not only what the
        // other application's grant lacked.
        const grantable = this.#grantable(details, bindTo);
        add = { oidcScopes: grantable.oidc, resourceScopes: [[this.deps.resource, grantable.resource]] };
        reuse = undefined;
      }
    }
    const previous = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    const grant = reuse ? previous : new provider.Grant({ accountId, clientId });
    if (!grant) throw new Error('grant of a live interaction not found');
    if (add.oidcScopes.length > 0) grant.addOIDCScope(add.oidcScopes.join(' '));
    // Claims are the person's (sub, name), consented for this same client before: kept.
    if (!reuse && previous) grant.addOIDCClaims(previous.getOIDCClaims());
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of add.resourceScopes) {
      if (scopes.length > 0) grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    if (bindTo) await this.deps.metadataClients.bind(grantId, bindTo, accountId, clientId);
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  /** Ends the authorization with `access_denied` naming the refusal's code, and audits it. */
  async #refuse(
    req: IncomingMessage,
    res: ServerResponse,
    clientId: string,
    userId: string,
    refusal: MetadataClientRefusal,
  ): Promise<void> {
    await this.deps.metadataClients.refused(clientId, userId, refusal);
    await this.deps.provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: `${refusal}: ${REFUSALS[refusal]}` },
      { mergeWithLastSubmission: false },
    );
  }

  /**
   * The client, or null once a page was sent: a metadata document refetched during a long
   * sign-in (its cache ended) may be slow, huge or changed; that is a coded 400 page, as at
   * the authorization endpoint, never a 500.
   */
  async #client(res: ServerResponse, clientId: string) {
    try {
      return await this.deps.provider.Client.find(clientId);
    } catch (error) {
      const code = metadataDocumentErrorCode(error, clientId);
      if (!code) throw error;
      send(
        res,
        400,
        oauthErrorPage(
          'This request cannot continue',
          'The client identified itself with a metadata document that Context Gateway cannot use.',
          code,
        ),
      );
      return null;
    }
  }

  /** Whether the interaction's grant may be extended: it is bound to the application chosen now. */
  async #reusable(grantId: string | undefined, app: MetadataClientApplication): Promise<boolean> {
    return grantId !== undefined && (await this.deps.metadataClients.boundApplicationId(grantId)) === app.id;
  }

  /** What a new grant for this application gets: the requested scopes it allows, and the OpenID ones requested. */
  #grantable(details: { params: Record<string, unknown> }, app: MetadataClientApplication) {
    const scope = details.params['scope'];
    const requested = new Set(typeof scope === 'string' ? scope.split(' ').filter(Boolean) : []);
    const oidc = this.deps.oidcScopes.filter((s) => requested.has(s));
    const resource = app.scopes.filter((s) => requested.has(s));
    return { oidc, resource, all: [...oidc, ...resource] };
  }

  /** The one application of the person's organizations that allowed this metadata URL. */
  async #metadataClientApplication(
    url: string,
    userId: string,
  ): Promise<{ app: MetadataClientApplication } | { refusal: MetadataClientRefusal }> {
    const apps = await this.deps.metadataClients.applicationsFor(url, userId);
    const [app] = apps;
    if (!app) return { refusal: 'client_not_allowed' };
    if (apps.length > 1) return { refusal: 'client_organization_ambiguous' };
    return { app };
  }

  async #person(req: IncomingMessage) {
    const token = readCookie(req.headers.cookie, SESSION_COOKIE);
    return token ? this.deps.resolveSession(token) : undefined;
  }
}

/** Every scope the consent would add: OpenID ones and the resource's capabilities. */
function requestedScopes(details: { prompt: { details: Record<string, unknown> } }): string[] {
  const d = details.prompt.details as { missingOIDCScope?: string[]; missingResourceScopes?: Record<string, string[]> };
  return [...new Set([...(d.missingOIDCScope ?? []), ...Object.values(d.missingResourceScopes ?? {}).flat()])];
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // No script, nothing from elsewhere, never framed (clickjacking on the Allow button).
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    'x-frame-options': 'DENY',
  });
  res.end(body);
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store' });
  res.end();
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw Object.assign(new Error('form too large'), { name: 'InvalidRequest' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
