/**
 * Who is calling, as the global AuthGuard establishes it from a route's `@Route({ auth })`.
 * Handlers take it with `@Caller()` (auth: 'api_key') or `@CurrentUser()` (auth: 'user_session').
 *
 * | auth           | credential                                   | sets              |
 * |----------------|----------------------------------------------|-------------------|
 * | `api_key`      | `Authorization: Bearer cg_sk_...`            | `request.caller`  |
 * | `operator`     | `Authorization: Bearer <OPERATOR_TOKEN>`     | `request.operator`|
 * | `user_session` | cookie `__Host-cg_session` (passkey sign-in)  | `request.user`    |
 * | `none`         | nothing                                      | nothing           |
 *
 * A missing or invalid credential is 401 `unauthenticated` (problem+json) before the
 * route's input is even validated. Other auth kinds are served by strategies that other
 * modules register with `AuthStrategies.register(kind, fn)`; an auth kind nobody serves
 * is refused, never waved through.
 */

/**
 * An application backend or agent, authenticated by one of its API keys, or by an OAuth
 * access token it obtained for itself (client credentials; src/oauth/access-tokens.ts):
 * then `apiKeyId` is empty and `accessTokenId` is the token's `jti`.
 */
export interface ApplicationCaller {
  kind: 'application';
  orgId: string;
  applicationId: string;
  apiKeyId: string;
  accessTokenId?: string;
  /** An access token acting for a person: that person (the route must keep to their connections). */
  onBehalfOf?: string;
  /** An access token's scopes: the route must not do more (undefined for an API key). */
  tokenScopes?: string[];
}

/** A person signed in with a passkey (gateway account). */
export interface SessionUser {
  userId: string;
  displayName: string;
  /** When the session cookie stops working. */
  sessionExpiresAt: Date;
  /** When the person last proved presence with a passkey (the session's start). */
  authenticatedAt: Date;
}

/** The deployment's operator (admin API). */
interface OperatorCaller {
  kind: 'operator';
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: ApplicationCaller;
    user?: SessionUser;
    operator?: OperatorCaller;
  }
}

/** The browser session cookie: `__Host-`, HttpOnly, SameSite=Lax, Path=/, Secure (auth/cookies.ts). */
export const SESSION_COOKIE = '__Host-cg_session';
