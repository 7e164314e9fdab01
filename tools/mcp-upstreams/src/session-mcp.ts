import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { toNodeHandler } from '@modelcontextprotocol/node';
import { McpServer, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server';
import { z } from 'zod';

// A 2025-11-25 server that keeps state per session, as many deployed servers do (the SDK's
// sessionful Streamable HTTP transport: `initialize` opens a session, `Mcp-Session-Id` names
// it on every later request, DELETE ends it). It takes no credential (an `auth: none`
// registration). Whatever one session was told, only that session hears again: a client
// shared by two tenants would let one read what the other wrote.

export interface RunningSessionMcp {
  /** The MCP endpoint (Streamable HTTP, 2025-11-25 with sessions). */
  url: string;
  /** Sessions opened since start (each `initialize` opens one). */
  sessionsOpened(): number;
  stop(): Promise<void>;
}

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  notes: string[];
}

function sessionServer(session: () => { id: string; notes: string[] }): McpServer {
  const server = new McpServer({ name: 'session-test-upstream', version: '0.1.0' });
  server.registerTool(
    'remember',
    {
      description: 'Keep a note for the rest of this session.',
      inputSchema: z.object({ text: z.string().min(1).max(1000) }),
    },
    ({ text }) => {
      session().notes.push(text);
      return { content: [{ type: 'text', text: 'kept' }] };
    },
  );
  server.registerTool(
    'recall',
    { description: 'The notes kept in this session, and its id.', annotations: { readOnlyHint: true } },
    () => {
      const { id, notes } = session();
      const value = { session: id, notes: [...notes] };
      return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
    },
  );
  return server;
}

export async function startSessionMcp(options: { port?: number } = {}): Promise<RunningSessionMcp> {
  const sessions = new Map<string, Session>();
  let opened = 0;
  const handle = async (request: Request): Promise<Response> => {
    const id = request.headers.get('mcp-session-id');
    if (id) {
      const found = sessions.get(id);
      // The spec's answer for a session the server does not know (any more): 404, start again.
      if (!found) return new Response(null, { status: 404 });
      return found.transport.handleRequest(request);
    }
    // No session yet: only `initialize` opens one (the transport refuses anything else).
    const notes: string[] = [];
    let sessionId = '';
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (created) => {
        sessionId = created;
        opened++;
        sessions.set(created, { transport, notes });
      },
      onsessionclosed: (closed) => void sessions.delete(closed),
    });
    await sessionServer(() => ({ id: sessionId, notes })).connect(transport);
    return transport.handleRequest(request);
  };
  const mcp = toNodeHandler({ fetch: (request) => handle(request) });
  const server: Server = createServer((req, res) => {
    if ((req.url ?? '/').split('?')[0] !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    void mcp(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    sessionsOpened: () => opened,
    stop: async () => {
      for (const session of sessions.values()) await session.transport.close().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
