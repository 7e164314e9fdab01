import { AppError } from '@context-gateway/errors';
import { checkOutboundUrl, guardedLookup, type OutboundPolicy } from '@context-gateway/service-kit';
import { Agent, fetch as undiciFetch } from 'undici';
import { z } from 'zod';

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** What a remote MCP server says about getting a token for it (MCP authorization, RFC 9728 + RFC 8414). */
export interface DiscoveredAuthorization {
  /** The resource identifier the tokens are for (RFC 8707 `resource`): the PRM's `resource`. */
  resource: string;
  /** Where the protected resource metadata was read. */
  resourceMetadataUrl: string;
  /** The scopes to ask for: the 401 challenge's `scope`, else the PRM's `scopes_supported`, else none. */
  scopes: string[];
  /** The authorization server's metadata, its `issuer` checked equal to the identifier it was found under. */
  authorizationServer: AuthorizationServerMetadata;
  /** A display name the server gives itself (`resource_name`), if any. */
  resourceName?: string;
}

const absoluteUrl = z.string().max(2000).url();

/** RFC 9728 §2 (what the gateway uses of it; other members are ignored). */
const protectedResourceMetadata = z.object({
  resource: absoluteUrl,
  authorization_servers: z.array(absoluteUrl).min(1),
  scopes_supported: z.array(z.string().max(200)).max(100).optional(),
  resource_name: z.string().max(200).optional(),
});

/** RFC 8414 §2 / OIDC Discovery (what the gateway uses of it). */
const authorizationServerMetadata = z
  .object({
    issuer: absoluteUrl,
    authorization_endpoint: absoluteUrl,
    token_endpoint: absoluteUrl,
    registration_endpoint: absoluteUrl.optional(),
    revocation_endpoint: absoluteUrl.optional(),
    code_challenge_methods_supported: z.array(z.string()).optional(),
    token_endpoint_auth_methods_supported: z.array(z.string()).optional(),
    authorization_response_iss_parameter_supported: z.boolean().optional(),
    client_id_metadata_document_supported: z.boolean().optional(),
    scopes_supported: z.array(z.string()).optional(),
  })
  .loose();
export type AuthorizationServerMetadata = z.infer<typeof authorizationServerMetadata>;

/** Metadata documents are small; anything bigger is refused unread. */
const MAX_METADATA_BYTES = 64 * 1024;
/** Any answer through the guarded fetch (metadata, registration, tokens): read at most this much. */
const MAX_RESPONSE_BYTES = 256 * 1024;

/**
 * The fetch every discovery and token request to an MCP server or its authorization server
 * goes through: the same SSRF guard as the gateway's upstream calls (https and public
 * addresses unless the operator allows otherwise, names checked at every connection), no
 * redirects followed, a time limit.
 */
export function guardedFetch(
  policy: OutboundPolicy,
  timeoutMs: number,
): { fetch: FetchLike; close: () => Promise<void> } {
  const agent = new Agent({ connect: { lookup: guardedLookup(policy) } });
  const fetch: FetchLike = async (input, init) => {
    const url = checkOutboundUrl(String(input), policy, 'The upstream authorization URL');
    const signal = init?.signal
      ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)])
      : AbortSignal.timeout(timeoutMs);
    const res = await undiciFetch(url, {
      ...(init as Parameters<typeof undiciFetch>[1]),
      redirect: 'manual',
      signal,
      dispatcher: agent,
    });
    // Every answer (metadata, registration, tokens) is small: counted while it streams, and
    // refused past the limit before more is read.
    if (!res.body || res.status === 204 || res.status === 304) return res;
    let read = 0;
    const limited = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, stream) {
          read += chunk.byteLength;
          if (read > MAX_RESPONSE_BYTES) stream.error(failed(`The answer from ${url.host} is too large`));
          else stream.enqueue(chunk);
        },
      }),
    );
    return new Response(limited as ReadableStream, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers as unknown as Headers,
    });
  };
  return { fetch, close: () => agent.close() };
}

function failed(message: string, path = 'url'): AppError {
  return new AppError('upstream_auth_discovery_failed', message, [{ path, message }]);
}

/** A URL discovery found, through the outbound guard: refused ones fail the discovery (with the guard's reason). */
function guarded(raw: string, policy: OutboundPolicy, what: string): URL {
  try {
    return checkOutboundUrl(raw, policy, what);
  } catch (error) {
    throw failed(AppError.from(error).message);
  }
}

/** `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` → its parameters (the Bearer challenge only). */
function bearerChallenge(header: string | null): Record<string, string> {
  if (!header) return {};
  const bearer = /(?:^|,\s*)Bearer\s+(.*)$/i.exec(header);
  if (!bearer?.[1]) return {};
  const params: Record<string, string> = {};
  // auth-param = token "=" ( token / quoted-string ), RFC 9110 §11.2; stops at the next scheme.
  const re = /\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(?:,|$)/y;
  let m: RegExpExecArray | null;
  while ((m = re.exec(bearer[1])) !== null) {
    const name = (m[1] ?? '').toLowerCase();
    if (!(name in params)) params[name] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  return params;
}

async function readJson(res: Response, what: string): Promise<unknown> {
  const declared = Number(res.headers.get('content-length') ?? 'NaN');
  if (Number.isFinite(declared) && declared > MAX_METADATA_BYTES) throw failed(`${what} is too large`);
  let text: string;
  try {
    text = await res.text();
  } catch (error) {
    throw error instanceof AppError ? failed(`${what} is too large`) : failed(`${what} could not be read`);
  }
  if (Buffer.byteLength(text) > MAX_METADATA_BYTES) throw failed(`${what} is too large`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw failed(`${what} is not JSON`);
  }
}

/** GET a metadata document; undefined when the server has none there (any non-200). */
async function getMetadata(fetch: FetchLike, url: string, what: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json' } });
  } catch (error) {
    if (error instanceof AppError) throw failed(`${what}: ${error.message}`);
    throw failed(`${what} could not be fetched (${url})`);
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    return undefined;
  }
  return readJson(res, what);
}

/**
 * The resource a PRM names must be the MCP server's URL or a prefix of it on the same origin
 * (a server at /mcp may describe itself as its origin): else the metadata is another
 * resource's, and a token for it must not be asked for on this server's behalf.
 */
function coversServer(resource: string, server: URL): boolean {
  const r = new URL(resource);
  if (r.origin !== server.origin || r.search || r.hash) return false;
  const base = r.pathname.replace(/\/+$/, '');
  return base === '' || server.pathname === base || server.pathname.startsWith(`${base}/`);
}

/** RFC 9728 §3.1: `/.well-known/oauth-protected-resource` inserted before the server's path, then at the root. */
function protectedResourceCandidates(server: URL): string[] {
  const path = server.pathname.replace(/\/+$/, '');
  const root = `${server.origin}/.well-known/oauth-protected-resource`;
  return path ? [`${root}${path}`, root] : [root];
}

/**
 * RFC 8414 §3.1 and OIDC Discovery, in the MCP specification's order: for an issuer with a
 * path, the well-known segment inserted (OAuth, then OpenID), then appended (OpenID); without
 * one, OAuth then OpenID at the root.
 */
function authorizationServerCandidates(issuer: URL): string[] {
  const path = issuer.pathname.replace(/\/+$/, '');
  if (!path)
    return [
      `${issuer.origin}/.well-known/oauth-authorization-server`,
      `${issuer.origin}/.well-known/openid-configuration`,
    ];
  return [
    `${issuer.origin}/.well-known/oauth-authorization-server${path}`,
    `${issuer.origin}/.well-known/openid-configuration${path}`,
    `${issuer.origin}${path}/.well-known/openid-configuration`,
  ];
}

/**
 * Finds how to get a token for a remote MCP server, as the MCP authorization specification
 * (2025-11-25, 2026-07-28) has a client do it: an unauthenticated request, whose 401
 * `WWW-Authenticate` names the protected resource metadata (else the path-aware well-known
 * URL, then the root one); that metadata's first authorization server; its metadata by RFC
 * 8414 or OIDC discovery, whose `issuer` must be exactly the identifier it was found under
 * (RFC 8414 §3.3, against mix-up) and which must offer PKCE S256. Every request goes through
 * `fetch` (the outbound guard); every URL found is checked by it again before use.
 */
export async function discoverMcpAuthorization(
  serverUrl: string,
  fetch: FetchLike,
  policy: OutboundPolicy,
): Promise<DiscoveredAuthorization> {
  const server = checkOutboundUrl(serverUrl, policy, 'The MCP server URL');
  let challenge: Record<string, string> = {};
  try {
    // What an MCP client sends first; a server that needs a token answers 401 with its challenge.
    const probe = await fetch(server, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'context-gateway', version: '1' },
        },
      }),
    });
    await probe.body?.cancel();
    if (probe.status === 401) challenge = bearerChallenge(probe.headers.get('www-authenticate'));
  } catch (error) {
    if (error instanceof AppError) throw failed(error.message);
    throw failed(`The MCP server could not be reached (${server.origin})`);
  }

  const candidates = challenge['resource_metadata']
    ? [guarded(challenge['resource_metadata'], policy, 'The protected resource metadata URL').href]
    : protectedResourceCandidates(server);
  let prm: z.infer<typeof protectedResourceMetadata> | undefined;
  let resourceMetadataUrl = '';
  for (const url of candidates) {
    const body = await getMetadata(fetch, url, 'The protected resource metadata');
    if (body === undefined) continue;
    const parsed = protectedResourceMetadata.safeParse(body);
    if (!parsed.success) throw failed(`The protected resource metadata at ${url} is invalid`);
    prm = parsed.data;
    resourceMetadataUrl = url;
    break;
  }
  if (!prm)
    throw failed(
      'The MCP server publishes no protected resource metadata (no resource_metadata in its 401 challenge, nothing at the well-known URLs)',
    );
  if (!coversServer(prm.resource, server))
    throw failed(`The protected resource metadata is for another resource (${prm.resource.slice(0, 200)})`);

  const [issuerId = ''] = prm.authorization_servers;
  const issuer = guarded(issuerId, policy, 'The authorization server');
  let metadata: AuthorizationServerMetadata | undefined;
  for (const url of authorizationServerCandidates(issuer)) {
    const body = await getMetadata(fetch, url, 'The authorization server metadata');
    if (body === undefined) continue;
    const parsed = authorizationServerMetadata.safeParse(body);
    if (!parsed.success) throw failed(`The authorization server metadata at ${url} is invalid`);
    metadata = parsed.data;
    break;
  }
  if (!metadata) throw failed(`The authorization server ${issuerId.slice(0, 200)} publishes no metadata`);
  if (metadata.issuer !== issuerId)
    throw new AppError(
      'upstream_auth_issuer_mismatch',
      `The authorization server's metadata names issuer ${metadata.issuer.slice(0, 200)}, not ${issuerId.slice(0, 200)}`,
      [{ path: 'url', message: 'the authorization server metadata names another issuer' }],
    );
  // The MCP specification: a client must refuse an authorization server without PKCE S256.
  if (!metadata.code_challenge_methods_supported?.includes('S256'))
    throw failed('The authorization server does not offer PKCE with S256');
  for (const endpoint of [metadata.authorization_endpoint, metadata.token_endpoint, metadata.registration_endpoint])
    if (endpoint) guarded(endpoint, policy, 'An authorization server endpoint');

  const scopes = challenge['scope'] ? challenge['scope'].split(' ').filter(Boolean) : (prm.scopes_supported ?? []);
  return {
    resource: prm.resource,
    resourceMetadataUrl,
    scopes: [...new Set(scopes)],
    authorizationServer: metadata,
    ...(prm.resource_name ? { resourceName: prm.resource_name } : {}),
  };
}
