import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { toNodeHandler } from '@modelcontextprotocol/node';
import {
  type CallToolResult,
  createMcpHandler,
  legacyStatelessFallback,
  type McpRequestContext,
  McpServer,
  type McpServerFactory,
  WebStandardStreamableHTTPServerTransport,
} from '@modelcontextprotocol/server';
import { z } from 'zod';

import { bearerAtMcp } from './seen-bearer.js';

export interface GithubMcpOptions {
  /** The GitHub (simulator) API every bearer token is checked against: `GET <url>/user`. */
  githubApiUrl: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /**
   * Also offer two misbehaving tools, for a gateway's failure handling: `slow_echo` (answers
   * after `ms` milliseconds) and `large_result` (answers `mb` megabytes of text).
   */
  faultyTools?: boolean;
  /**
   * Serve protocol revision 2025-11-25 only (`initialize`, no `server/discover`), as servers
   * built before 2026-07-28 do.
   */
  legacyOnly?: boolean;
  /**
   * The `ttlMs` its 2026-07-28 tool lists carry (`cacheScope: private`: each account sees its
   * own). Without it the SDK's default, `ttlMs: 0` (immediately stale).
   */
  toolsTtlMs?: number;
}

export interface RunningGithubMcp {
  /** The MCP endpoint (Streamable HTTP, both protocol revisions). */
  url: string;
  stop(): Promise<void>;
}

interface GithubUser {
  login: string;
}

const json = (value: unknown): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(value) }],
  structuredContent: value,
});

/**
 * One server instance per request (stateless serving of both revisions), for the GitHub
 * account the request's bearer token belongs to. The tools call the GitHub API with that
 * same token: what a real remote MCP server in front of an API does.
 */
interface ServerShape {
  faultyTools: boolean;
  /** `search_code` is listed only while this is true (`POST /_control/tools {"searchCode": bool}`). */
  searchCode: boolean;
  /**
   * The resource `github://notifications` and the prompt `triage_issues` are listed only while
   * this is true (`POST /_control/extras {"offered": bool}`): resource and prompt lists that change.
   */
  extras: boolean;
  toolsTtlMs: number | undefined;
  /**
   * A slow server: each 2026-07-28 `tools/list` is answered this long after it arrived, with
   * the list as it was on arrival (`POST /_control/tools {"listDelayMs": n}`; 0 by default).
   */
  listDelayMs: number;
}

function githubServer(githubApiUrl: string, token: string, user: GithubUser, shape: ServerShape): McpServer {
  const server = new McpServer(
    { name: 'github-test-upstream', version: '0.1.0' },
    shape.toolsTtlMs === undefined
      ? {}
      : { cacheHints: { 'tools/list': { ttlMs: shape.toolsTtlMs, cacheScope: 'private' } } },
  );
  server.registerTool(
    'list_repos',
    {
      description: "List the authenticated account's repositories.",
      inputSchema: z.object({ limit: z.number().int().min(1).max(100).optional() }),
      annotations: { readOnlyHint: true },
    },
    async ({ limit }) => {
      const res = await fetch(`${githubApiUrl}/user/repos?per_page=${limit ?? 30}`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json' },
      });
      if (!res.ok) return { isError: true, content: [{ type: 'text', text: `GitHub answered ${res.status}` }] };
      const repos = (await res.json()) as { full_name: string }[];
      return json({ repos: repos.map((r) => r.full_name) });
    },
  );
  server.registerTool(
    'create_issue',
    {
      description: 'Open an issue in a repository.',
      inputSchema: z.object({ repo: z.string().min(3).max(200), title: z.string().min(1).max(256) }),
      annotations: { readOnlyHint: false, destructiveHint: false },
    },
    ({ repo, title }) => json({ repo, title, number: Math.floor(Math.random() * 1_000_000), author: user.login }),
  );
  server.registerTool(
    'delete_repo',
    {
      description: 'Delete a repository. This cannot be undone.',
      inputSchema: z.object({ repo: z.string().min(3).max(200) }),
      annotations: { readOnlyHint: false, destructiveHint: true },
    },
    ({ repo }) => json({ deleted: repo, by: user.login }),
  );
  server.registerResource(
    'profile',
    'github://user',
    { description: 'The GitHub account the token belongs to.', mimeType: 'application/json' },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(user) }] }),
  );
  server.registerPrompt(
    'review_repo',
    {
      description: 'Ask for a review of one repository.',
      argsSchema: z.object({ repo: z.string().min(3).max(200) }),
    },
    ({ repo }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Review ${repo} for ${user.login}.` } }],
    }),
  );
  if (shape.extras) {
    server.registerResource(
      'notifications',
      'github://notifications',
      { description: "The account's unread notifications.", mimeType: 'application/json' },
      (uri) => ({ contents: [{ uri: uri.href, mimeType: 'application/json', text: '[]' }] }),
    );
    server.registerPrompt('triage_issues', { description: 'Ask for a triage of the open issues.' }, () => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Triage the open issues of ${user.login}.` } }],
    }));
  }
  if (shape.searchCode) {
    server.registerTool(
      'search_code',
      {
        description: "Search code in the account's repositories.",
        inputSchema: z.object({ query: z.string().min(1).max(256) }),
        annotations: { readOnlyHint: true },
      },
      ({ query }) => json({ query, matches: [] }),
    );
  }
  if (shape.faultyTools) {
    server.registerTool(
      'slow_echo',
      {
        description: 'Echo the text after waiting ms milliseconds.',
        inputSchema: z.object({ text: z.string().max(1000), ms: z.number().int().min(0).max(600_000) }),
        annotations: { readOnlyHint: true },
      },
      async ({ text, ms }) => {
        await new Promise((resolve) => setTimeout(resolve, ms));
        return json({ text });
      },
    );
    server.registerTool(
      'large_result',
      {
        description: 'Answer mb megabytes of text.',
        inputSchema: z.object({ mb: z.number().int().min(1).max(64) }),
        annotations: { readOnlyHint: true },
      },
      ({ mb }) => ({ content: [{ type: 'text', text: 'x'.repeat(mb * 1024 * 1024) }] }),
    );
  }
  return server;
}

/**
 * A GitHub-shaped remote MCP server for tests, built with the official SDK. Every request
 * must carry a bearer token GitHub (the simulator) accepts; every Authorization header it
 * ever received is kept and served at `GET /_seen` so a test can prove which tokens reached
 * it (the gateway's own never may), with the number of 2025-11-25 GET streams open now.
 * `POST /_control/tools` and `/_control/extras` change what it lists (told to listening
 * clients on both revisions).
 */
export async function startGithubMcp(options: GithubMcpOptions): Promise<RunningGithubMcp> {
  const seen: (string | null)[] = [];
  // `tools/call` requests by tool name, from the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers.
  const toolCalls: Record<string, number> = {};
  const shape: ServerShape = {
    faultyTools: options.faultyTools ?? false,
    searchCode: false,
    extras: false,
    toolsTtlMs: options.toolsTtlMs,
    listDelayMs: 0,
  };
  // `tools/list` requests received, and the most ever answered at once (a client's reads overlapping).
  const toolLists = { received: 0, inFlight: 0, mostAtOnce: 0 };
  const factory: McpServerFactory = (ctx) => {
    const user = ctx.authInfo?.extra?.user as GithubUser | undefined;
    if (!ctx.authInfo || !user) throw new Error('unauthenticated request reached the MCP handler');
    // The tools as they were when the request arrived (a slow answer is of that moment).
    const arrived = (ctx.authInfo.extra?.shape as ServerShape | undefined) ?? shape;
    return githubServer(options.githubApiUrl, ctx.authInfo.token, user, arrived);
  };
  const handler = createMcpHandler(factory);
  // 2025-11-25 only: every request goes to the stateless `initialize`-era serving, which
  // answers a `server/discover` probe as such a server does (it does not know the method).
  const posts = options.legacyOnly ? legacyStatelessFallback(factory) : handler.fetch;
  // 2025-11-25's standalone stream (GET): the SDK's stateless serving answers 405, so each GET
  // gets its own instance on a stateless transport, kept while the client holds the stream,
  // for `notifications/tools/list_changed`. (2026-07-28 clients use subscriptions/listen.)
  const streams = new Set<McpServer>();
  const legacyFactory = (authInfo: McpRequestContext['authInfo']) =>
    githubServer(options.githubApiUrl, authInfo?.token ?? '', authInfo?.extra?.user as GithubUser, shape);
  const mcp = toNodeHandler({
    fetch: async (request, requestOptions) => {
      if (request.method !== 'GET') return posts(request, requestOptions);
      const server = legacyFactory(requestOptions?.authInfo);
      const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      await server.connect(transport);
      const response = await transport.handleRequest(request);
      if (!response.body) return response;
      streams.add(server);
      const close = () => {
        streams.delete(server);
        void server.close().catch(() => undefined);
      };
      request.signal.addEventListener('abort', close, { once: true });
      // An SSE comment first, so the headers go out now rather than with the first event.
      return new Response(withOpeningComment(response.body), response);
    },
  });

  const server: Server = createServer((req, res) => {
    void serve(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/_control/extras' && req.method === 'POST') {
      const offered = (await jsonBody<{ offered?: boolean }>(req)).offered === true;
      if (offered !== shape.extras) {
        shape.extras = offered;
        // Told through the SDK on both revisions, as for the tools below.
        handler.notify.resourcesChanged();
        handler.notify.promptsChanged();
        for (const stream of streams) {
          stream.sendResourceListChanged();
          stream.sendPromptListChanged();
        }
      }
      res.writeHead(204).end();
      return;
    }
    if (path === '/_control/tools' && req.method === 'POST') {
      const body = await jsonBody<{ searchCode?: boolean; listDelayMs?: number }>(req);
      if (typeof body.listDelayMs === 'number') shape.listDelayMs = body.listDelayMs;
      const searchCode = body.searchCode === true;
      if (searchCode !== shape.searchCode) {
        shape.searchCode = searchCode;
        // Told through the SDK on both revisions: subscriptions/listen streams, and GET streams.
        handler.notify.toolsChanged();
        for (const stream of streams) stream.sendToolListChanged();
      }
      res.writeHead(204).end();
      return;
    }
    const at = bearerAtMcp(req, res, path, seen, () => ({
      openStreams: streams.size,
      toolCalls,
      toolLists: { ...toolLists },
    }));
    if (!at) return;
    const name = req.headers['mcp-name'];
    if (req.headers['mcp-method'] === 'tools/call' && typeof name === 'string')
      toolCalls[name] = (toolCalls[name] ?? 0) + 1;
    const { token } = at;
    const user = token ? await githubUser(options.githubApiUrl, token) : undefined;
    if (!token || !user) {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      return;
    }
    const arrived = { ...shape };
    (req as IncomingMessage & { auth?: unknown }).auth = {
      token,
      clientId: 'github',
      scopes: [],
      extra: { user, shape: arrived },
    };
    if (req.headers['mcp-method'] === 'tools/list') {
      toolLists.received++;
      toolLists.mostAtOnce = Math.max(toolLists.mostAtOnce, ++toolLists.inFlight);
      res.once('close', () => toolLists.inFlight--);
      if (arrived.listDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, arrived.listDelayMs));
    }
    await mcp(req, res);
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stop: async () => {
      for (const stream of streams) await stream.close().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await handler.close();
    },
  };
}

async function jsonBody<T>(req: IncomingMessage): Promise<T> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}') as T;
}

async function githubUser(githubApiUrl: string, token: string): Promise<GithubUser | undefined> {
  const res = await fetch(`${githubApiUrl}/user`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) return undefined;
  const body = (await res.json()) as Partial<GithubUser>;
  return typeof body.login === 'string' ? { login: body.login } : undefined;
}

/** `body` after an SSE comment line (ignored by clients), which makes the response start at once. */
function withOpeningComment(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const opening = new TextEncoder().encode(': stream open\n\n');
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start: (controller) => controller.enqueue(opening),
    }),
  );
}
