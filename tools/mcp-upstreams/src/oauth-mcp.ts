import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { toNodeHandler } from '@modelcontextprotocol/node';
import { type CallToolResult, createMcpHandler, McpServer, type McpServerFactory } from '@modelcontextprotocol/server';
import { exportJWK, generateKeyPair, type JWTPayload, jwtVerify } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';
import { z } from 'zod';

import { bearerAtMcp } from './seen-bearer.js';

export interface OAuthMcpOptions {
  /** Seconds an access token lives (short in tests that need a refresh). */
  accessTokenTtl?: number;
  /** A client registered in advance (an operator's pre-registered client), besides dynamic registration. */
  preRegistered?: { clientId: string; clientSecret: string; redirectUri: string };
  /** Turn dynamic client registration (RFC 7591) off: only the pre-registered client works. */
  noRegistration?: boolean;
}

export interface RunningOAuthMcp {
  /** The MCP endpoint (Streamable HTTP), also its resource identifier. */
  url: string;
  /** Its authorization server's issuer (another origin). */
  issuer: string;
  /** What each successful token request asked for (its grant type and `resource`), in order. */
  tokenRequests(): TokenRequest[];
  stop(): Promise<void>;
}

/** A successful token request: its grant type and the `resource` it named. */
export interface TokenRequest {
  grantType: string;
  resource: string | undefined;
}

const SCOPES = ['notes:read', 'notes:write'];

const json = (value: unknown): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(value) }],
  structuredContent: value,
});

/**
 * A notes server for one person: `whoami` says whose token it is (the AS's subject) and the
 * audience it carried, `list_notes` and `add_note` keep notes per subject in memory.
 */
function notesServer(subject: string, audience: string, notes: Map<string, string[]>): McpServer {
  const server = new McpServer({ name: 'notes-oauth-test-upstream', version: '0.1.0' });
  server.registerTool(
    'whoami',
    { description: 'Who the access token belongs to.', annotations: { readOnlyHint: true } },
    () => json({ subject, audience }),
  );
  server.registerTool(
    'list_notes',
    { description: "List the person's notes.", annotations: { readOnlyHint: true } },
    () => json({ notes: notes.get(subject) ?? [] }),
  );
  server.registerTool(
    'add_note',
    {
      description: 'Add a note.',
      inputSchema: z.object({ text: z.string().min(1).max(500) }),
      annotations: { readOnlyHint: false, destructiveHint: false },
    },
    ({ text }) => {
      notes.set(subject, [...(notes.get(subject) ?? []), text]);
      return json({ added: text });
    },
  );
  return server;
}

/**
 * A remote MCP server protected by its own OAuth authorization server, as the MCP
 * authorization spec describes one: the MCP endpoint answers 401 with
 * `WWW-Authenticate: Bearer resource_metadata=…` and publishes its protected resource
 * metadata (RFC 9728, path-aware); the authorization server (oidc-provider, on another
 * port) has resource indicators (RFC 8707), dynamic client registration, PKCE, refresh
 * tokens and `iss` in its responses (RFC 9207), and issues JWT access tokens whose audience
 * is the MCP server. The MCP server accepts only those (signature, issuer, audience = its
 * own URL, expiry) and records every Authorization header it saw (`GET /_seen`, with the
 * token requests its AS answered). `POST /_control/revoke-seen-tokens` makes it refuse every
 * token it has seen so far (a revocation at its AS); tokens issued later are taken.
 * Its login is oidc-provider's development form (any login and password) and consent page.
 */
export async function startOAuthMcp(options: OAuthMcpOptions = {}): Promise<RunningOAuthMcp> {
  const asServer: Server = createServer();
  const mcpServer: Server = createServer();
  await new Promise<void>((resolve) => asServer.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => mcpServer.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(asServer.address() as AddressInfo).port}`;
  const mcpOrigin = `http://127.0.0.1:${(mcpServer.address() as AddressInfo).port}`;
  const resource = `${mcpOrigin}/mcp`;
  const metadataUrl = `${mcpOrigin}/.well-known/oauth-protected-resource/mcp`;

  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const signing = { ...(await exportJWK(privateKey)), kid: 'notes-as-1', alg: 'RS256', use: 'sig' };
  const pre = options.preRegistered;
  const configuration: Configuration = {
    clients: pre
      ? [
          {
            client_id: pre.clientId,
            client_secret: pre.clientSecret,
            redirect_uris: [pre.redirectUri],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_post',
          },
        ]
      : [],
    jwks: { keys: [signing] },
    scopes: ['openid', 'offline_access'],
    pkce: { required: () => true },
    cookies: { keys: ['notes-as-cookie-key-0123456789abcdef'] },
    // Every client allowed the refresh grant gets a refresh token (no offline_access dance).
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: !options.noRegistration },
      resourceIndicators: {
        enabled: true,
        // One resource only: this MCP server. Every authorization and token request must name
        // it (no default, the grant's not reused): a client dropping `resource` gets no token
        // this server accepts.
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx, indicator) => {
          if (indicator !== resource) throw new Error(`unknown resource ${indicator}`);
          return {
            scope: SCOPES.join(' '),
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: options.accessTokenTtl ?? 3600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // Any login of the development form is an account whose subject is that login.
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    ttl: {
      AccessToken: options.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 86_400,
      RefreshToken: 86_400,
    },
  };
  const provider = new Provider(issuer, configuration);
  const tokenRequests: TokenRequest[] = [];
  provider.on('grant.success', (ctx: { oidc?: { params?: Record<string, unknown> } }) => {
    const params = ctx.oidc?.params ?? {};
    tokenRequests.push({
      grantType: typeof params['grant_type'] === 'string' ? params['grant_type'] : '',
      resource: typeof params['resource'] === 'string' ? params['resource'] : undefined,
    });
  });
  const callback = provider.callback();
  asServer.on('request', (req, res) => void callback(req, res));

  const seen: (string | null)[] = [];
  /** Tokens the server no longer takes (`POST /_control/revoke-seen-tokens`), as after a revocation at its AS. */
  const revoked = new Set<string>();
  const notes = new Map<string, string[]>();
  const factory: McpServerFactory = (ctx) => {
    const claims = ctx.authInfo?.extra?.claims as JWTPayload | undefined;
    if (!claims?.sub) throw new Error('unauthenticated request reached the MCP handler');
    return notesServer(claims.sub, String(claims.aud), notes);
  };
  const handler = createMcpHandler(factory);
  const mcp = toNodeHandler(handler);
  const challenge = (error?: string) =>
    `Bearer resource_metadata="${metadataUrl}", scope="${SCOPES.join(' ')}"${error ? `, error="${error}"` : ''}`;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/.well-known/oauth-protected-resource/mcp' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          resource,
          authorization_servers: [issuer],
          scopes_supported: SCOPES,
          bearer_methods_supported: ['header'],
          resource_name: 'Notes (test)',
        }),
      );
      return;
    }
    if (path === '/_control/revoke-seen-tokens' && req.method === 'POST') {
      for (const header of seen) {
        const seenToken = /^Bearer (\S+)$/.exec(header ?? '')?.[1];
        if (seenToken) revoked.add(seenToken);
      }
      res.writeHead(204).end();
      return;
    }
    const at = bearerAtMcp(req, res, path, seen, () => ({ tokenRequests }));
    if (!at) return;
    const { token } = at;
    if (!token || revoked.has(token)) {
      res.writeHead(401, { 'www-authenticate': challenge(token ? 'invalid_token' : undefined) }).end();
      return;
    }
    // Only a token its own authorization server issued for this very server.
    const verified = await jwtVerify(token, publicKey, { issuer, audience: resource }).catch(() => undefined);
    if (!verified) {
      res.writeHead(401, { 'www-authenticate': challenge('invalid_token') }).end();
      return;
    }
    (req as IncomingMessage & { auth?: unknown }).auth = {
      token,
      clientId: typeof verified.payload['client_id'] === 'string' ? verified.payload['client_id'] : '',
      scopes: typeof verified.payload['scope'] === 'string' ? verified.payload['scope'].split(' ') : [],
      extra: { claims: verified.payload },
    };
    await mcp(req, res);
  }
  mcpServer.on('request', (req, res) => {
    void serve(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  const close = (server: Server) =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    url: resource,
    issuer,
    tokenRequests: () => [...tokenRequests],
    stop: async () => {
      await Promise.all([close(asServer), close(mcpServer)]);
      await handler.close();
    },
  };
}
