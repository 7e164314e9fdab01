/**
 * The public OAuth URLs, all derived from GATEWAY_PUBLIC_URL (identity derives the same
 * ones from the same variable, services/identity/src/oauth/oauth-server.ts).
 */
export interface OAuthUrls {
  /** The authorization server's issuer: `<public URL>/oauth`. */
  issuer: string;
  /** `/oauth`: the path prefix proxied to identity. */
  issuerPath: string;
  /** The gateway as a protected resource (RFC 8707 / RFC 9728): the audience of every access token. */
  resource: string;
  /** RFC 9728 metadata, named in every 401's WWW-Authenticate. */
  resourceMetadata: string;
}

export function oauthUrls(gatewayPublicUrl: string): OAuthUrls {
  const resource = gatewayPublicUrl.replace(/\/+$/, '');
  const issuer = `${resource}/oauth`;
  const url = new URL(resource);
  // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
  const resourceMetadata = `${url.origin}/.well-known/oauth-protected-resource${url.pathname.replace(/\/+$/, '')}`;
  return { issuer, issuerPath: new URL(issuer).pathname, resource, resourceMetadata };
}

/** `Bearer resource_metadata="…"`: how a client that got a 401 finds the authorization server (RFC 9728 §5.1). */
export function bearerChallenge(
  urls: OAuthUrls,
  error?: { code: string; description: string; scope?: string },
): string {
  const parts = [`resource_metadata="${urls.resourceMetadata}"`];
  if (error) {
    parts.push(`error="${error.code}"`, `error_description="${error.description.replace(/["\\]/g, '')}"`);
    if (error.scope) parts.push(`scope="${error.scope}"`);
  }
  return `Bearer ${parts.join(', ')}`;
}
