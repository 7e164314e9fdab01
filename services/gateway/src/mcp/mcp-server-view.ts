import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { McpServer } from '@context-gateway/proto';
import type { Tool } from '@modelcontextprotocol/server';

/** One tool as an upstream MCP server lists it (MCP `Tool`; what the gateway passes on). */
export type UpstreamTool = Tool;

/**
 * How the gateway authenticates upstream for a person: their connection to the integration
 * (the catalog's OAuth or an API key), a connection made with the server's own authorization
 * server (the same to the gateway: the broker holds and refreshes it), or nothing at all.
 */
type McpServerAuth = 'connection' | 'mcp_oauth' | 'none';

/** An org's remote MCP server as the gateway uses it: decoded once per policy revision. */
export interface McpServerView {
  integration: string;
  url: string;
  auth: McpServerAuth;
  tools: ReadonlyMap<string, UpstreamTool>;
  toolsDigest: string;
  /** When the tools were last read; undefined until the first read. */
  toolsReadAt: Date | undefined;
  /** Tool name -> the argument naming the resource a call touches. */
  resourceArguments: Readonly<Record<string, string>>;
}

export function mcpServerView(wire: McpServer): McpServerView {
  let tools: UpstreamTool[] = [];
  try {
    tools = JSON.parse(wire.toolsJson || '[]') as UpstreamTool[];
  } catch {
    // policy stores only lists it checked; an unreadable one lists nothing.
  }
  return {
    integration: wire.integration,
    url: wire.url,
    // Registered before the field existed: the person's connection, as then.
    auth: wire.auth === 'mcp_oauth' || wire.auth === 'none' ? wire.auth : 'connection',
    tools: new Map(tools.map((t) => [t.name, t])),
    toolsDigest: wire.toolsDigest,
    toolsReadAt: wire.toolsReadAt ? timestampDate(wire.toolsReadAt) : undefined,
    resourceArguments: { ...wire.resourceArguments },
  };
}

/**
 * The name a tool has at /mcp: `<integration>.<tool>`. Integration names hold no dot, so the
 * first dot splits it again, and two integrations' tools never collide.
 */
export function gatewayToolName(integration: string, tool: string): string {
  return `${integration}.${tool}`;
}

export function splitGatewayToolName(name: string): { integration: string; tool: string } | undefined {
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) return undefined;
  return { integration: name.slice(0, dot), tool: name.slice(dot + 1) };
}

/**
 * A resource's URI at /mcp: `<integration>+<its URI>` (`github+github://user`), so a read
 * finds its server again and two servers' URIs never collide. Integration names hold no `+`.
 */
export function wrapUri(integration: string, uri: string): string {
  return `${integration}+${uri}`;
}

export function unwrapUri(uri: string): { integration: string; uri: string } | undefined {
  const plus = uri.indexOf('+');
  if (plus <= 0 || plus === uri.length - 1) return undefined;
  return { integration: uri.slice(0, plus), uri: uri.slice(plus + 1) };
}

/**
 * Whether a token issued for `resource` (RFC 8707: the broker's registration of the server)
 * may be sent to `server`: for a server with its own OAuth, only when the resource is the
 * server's URL or a path above it on the same origin. The policy's server and the broker's
 * registration are two writes: a token for another server is never sent across the gap.
 * Other servers' tokens are the catalog source's, not bound to the MCP server's URL.
 */
export function tokenIsFor(server: Pick<McpServerView, 'auth' | 'url'>, resource: string): boolean {
  if (server.auth !== 'mcp_oauth') return true;
  let issued: URL;
  let target: URL;
  try {
    issued = new URL(resource);
    target = new URL(server.url);
  } catch {
    return false;
  }
  if (issued.origin !== target.origin || issued.search || issued.hash) return false;
  const base = issued.pathname.replace(/\/+$/, '');
  const path = target.pathname.replace(/\/+$/, '');
  return path === base || path.startsWith(`${base}/`);
}
