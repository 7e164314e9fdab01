import { AppError } from '@context-gateway/errors';
import { type Client, errors, type Provider, type ResourceServer } from 'oidc-provider';

import { TOKEN_EXCHANGE_GRANT } from './oauth-clients.js';

/** RFC 8693 §3 token type identifiers this server takes and gives. */
const TOKEN_TYPE = {
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
} as const;

/** Every RFC 8693 §2.1 parameter: known (so refused with a reason, not silently dropped). */
const PARAMETERS = [
  'subject_token',
  'subject_token_type',
  'requested_token_type',
  'actor_token',
  'actor_token_type',
  'audience',
  'scope',
  'resource',
];

export interface TokenExchangeOptions {
  /** The gateway's resource URI: the one audience (and `resource`) a token is issued for. */
  resource: string;
  /** The same resource server settings the other grants get (JWT, ES256, TTL, the client's capabilities as scope). */
  resourceServer: (client: Client) => ResourceServer;
  /**
   * The person the subject token names, for this application: verified, used once,
   * provisioned. Throws an AppError when it is refused (then `invalid_request`, with its message).
   */
  subject: (input: { orgId: string; idpClientId: string; subjectToken: string }) => Promise<string>;
  /**
   * The grant (token family) earlier exchanges of this person and application made, to add
   * to rather than multiply. Only an exchange's own: adding scopes to a grant the person
   * consented to in a browser would let a later silent authorization (`prompt=none`) of the
   * application hand out a refresh token for them.
   */
  /**
   * Called (awaited) when the subject token is refused, before the error answer: the trail's
   * denial, with the refusal's code (`sso_response_invalid`, `sso_membership_refused`, or
   * `sso_not_configured` when the org has no IdP any more).
   */
  refused?: (client: Client, code: string) => Promise<void>;
  exchangeGrants: {
    find(accountId: string, clientId: string): Promise<string | undefined>;
    remember(accountId: string, clientId: string, grantId: string, expiresAt: Date | undefined): Promise<void>;
  };
}

/**
 * Token exchange (RFC 8693) as an oidc-provider grant type: a confidential application
 * whose admin named its client id at the organization's IdP exchanges an ID token that IdP
 * issued to it (`subject_token_type` id_token) for a gateway access token acting for that
 * person, without a browser. The organization's admin allowing it (the IdP client id on
 * the application) stands in for the person's consent screen; the grant it creates is the
 * person's like any other, listed and revocable under `/v1/me/oauth-grants`. No refresh
 * token: the application exchanges a fresh ID token instead, so the IdP stays in charge of
 * the session. No actor token: the application acts as itself, for the person.
 */
export function registerTokenExchange(provider: Provider, options: TokenExchangeOptions): void {
  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT,
    async (ctx) => {
      const { client } = ctx.oidc;
      const params = ctx.oidc.params as Record<string, unknown>;
      const param = (name: string) => (typeof params[name] === 'string' ? params[name] : undefined);
      const subjectToken = param('subject_token');
      if (!subjectToken) throw new errors.InvalidRequest("missing required parameter 'subject_token'");
      if (param('subject_token_type') !== TOKEN_TYPE.idToken) {
        throw new errors.InvalidRequest(`subject_token_type must be ${TOKEN_TYPE.idToken}`);
      }
      const requested = param('requested_token_type');
      if (requested !== undefined && requested !== TOKEN_TYPE.accessToken) {
        throw new errors.InvalidRequest(`requested_token_type must be ${TOKEN_TYPE.accessToken}`);
      }
      if (param('actor_token') !== undefined || param('actor_token_type') !== undefined) {
        throw new errors.InvalidRequest('actor tokens are not accepted: the application acts for the person itself');
      }
      for (const name of ['audience', 'resource']) {
        const target = params[name];
        if (target !== undefined && target !== options.resource) {
          throw new errors.InvalidTarget(`${name} must be the gateway's resource URI`);
        }
      }
      const capabilities = (client['capabilities'] as string[] | undefined) ?? [];
      const scope = param('scope')?.split(' ').filter(Boolean) ?? capabilities;
      const notAllowed = scope.filter((s) => !capabilities.includes(s));
      if (notAllowed.length > 0) throw new errors.InvalidScope('requested scope is not allowed', notAllowed.join(' '));
      if (scope.length === 0) throw new errors.InvalidScope('the application has no capability to ask for', '');

      let accountId: string;
      try {
        accountId = await options.subject({
          orgId: client['org_id'] as string,
          idpClientId: client['idp_client_id'] as string,
          subjectToken,
        });
      } catch (error) {
        // RFC 8693 §2.2.2: a subject token that is invalid or unacceptable is invalid_request.
        if (error instanceof AppError) {
          await options.refused?.(client, error.code);
          throw new errors.CustomOIDCProviderError('invalid_request', error.message);
        }
        throw error;
      }

      const known = await options.exchangeGrants.find(accountId, client.clientId);
      const found = known ? await provider.Grant.find(known) : undefined;
      const grant =
        found?.accountId === accountId && found.clientId === client.clientId
          ? found
          : new provider.Grant({ accountId, clientId: client.clientId });
      grant.addResourceScope(options.resource, scope.join(' '));
      const grantId = await grant.save();
      if (grantId !== known) {
        await options.exchangeGrants.remember(
          accountId,
          client.clientId,
          grantId,
          grant.exp ? new Date(grant.exp * 1000) : undefined,
        );
      }
      ctx.oidc.entity('Grant', grant);

      const token = new provider.AccessToken({
        accountId,
        client,
        grantId,
        gty: 'token_exchange',
        scope: scope.join(' '),
      });
      token.resourceServer = new provider.ResourceServer(options.resource, options.resourceServer(client));
      ctx.oidc.entity('AccessToken', token);
      const accessToken = await token.save();
      ctx.body = {
        access_token: accessToken,
        issued_token_type: TOKEN_TYPE.accessToken,
        token_type: 'Bearer',
        expires_in: token.expiration,
        scope: token.scope,
      };
    },
    PARAMETERS,
  );
}
