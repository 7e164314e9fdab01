import type { FieldProblem } from '@context-gateway/errors';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const INTEGRATION = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** `<integration>:<words separated by : . _ ->`, e.g. `github:read:repos`, `github:create_issue`. */
const SCOPE = /^[a-z0-9][a-z0-9_-]{0,62}(?::[a-z0-9][a-z0-9_.-]{0,62}){1,4}$/;

/**
 * A callback URL the gateway may redirect a user to, compared byte for byte later: an
 * absolute https URL (http only for loopback, for local development), no fragment (RFC
 * 6749 §3.1.2), no user info. Returned in its normalized form so that the stored value
 * is exactly what a later exact comparison sees.
 */
export function checkCallbackUrl(value: string, path: string): { url?: string; problems: FieldProblem[] } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { problems: [{ path, message: 'must be an absolute URL' }] };
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    return { problems: [{ path, message: 'must use https (http only for localhost or 127.0.0.1)' }] };
  }
  if (url.hash || value.includes('#')) return { problems: [{ path, message: 'must not have a fragment' }] };
  if (url.username || url.password) return { problems: [{ path, message: 'must not contain user info' }] };
  if (url.href !== value) return { problems: [{ path, message: `must be written in normalized form: ${url.href}` }] };
  return { url: url.href, problems: [] };
}

export interface ApplicationDeclaration {
  callbackUrls: string[];
  integrations: string[];
  scopes: string[];
}

/**
 * What an application may declare: at least one exact callback URL (none for a metadata-URL
 * client), integrations by id,
 * and scopes each belonging to one of its declared integrations (a scope for an
 * undeclared integration would be an allow nobody meant to give).
 */
export function checkDeclaration(input: ApplicationDeclaration, metadataClient = false): FieldProblem[] {
  const problems: FieldProblem[] = [];
  // An MCP client allowed by its metadata URL has its redirect URIs in its document, none here.
  if (metadataClient && input.callbackUrls.length > 0)
    problems.push({ path: 'callbackUrls', message: 'must be empty for an MCP client allowed by its metadata URL' });
  if (!metadataClient && input.callbackUrls.length === 0)
    problems.push({ path: 'callbackUrls', message: 'must list at least one URL' });
  if (input.callbackUrls.length > 20) problems.push({ path: 'callbackUrls', message: 'must list at most 20 URLs' });
  input.callbackUrls.forEach((u, i) => problems.push(...checkCallbackUrl(u, `callbackUrls.${i}`).problems));
  input.integrations.forEach((integration, i) => {
    if (!INTEGRATION.test(integration))
      problems.push({
        path: `integrations.${i}`,
        message: 'must be an integration id (lower-case letters, digits, _ and -)',
      });
  });
  const declared = new Set(input.integrations);
  input.scopes.forEach((scope, i) => {
    if (!SCOPE.test(scope))
      problems.push({ path: `scopes.${i}`, message: 'must look like <integration>:<action>[:<resource>]' });
    else if (!declared.has(scope.slice(0, scope.indexOf(':'))))
      problems.push({ path: `scopes.${i}`, message: `belongs to an integration the application does not declare` });
  });
  return problems;
}
