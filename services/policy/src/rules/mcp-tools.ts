import { createHash } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import { MCP_TOOL_NAME } from '@context-gateway/proto';

import type { McpServer as McpServerRow } from '../generated/prisma/client.js';

/** More tools than this from one server is a misbehaving server, not a catalog. */
const MAX_TOOLS = 1_000;

/**
 * The scope a person grants an application to let it use the tools of the integration's
 * MCP server on their behalf: expanded, for that application alone, into a user-layer allow
 * of every tool the server lists (org and application layers still decide each one).
 */
export function toolsScopeOf(integration: string): string {
  return `${integration}:tools`;
}

/** The capabilities a server's stored tools are, `<integration>:<tool>`. */
export function toolCapabilities(row: Pick<McpServerRow, 'integration' | 'toolsJson'>): string[] {
  return toolNames(row.toolsJson).map((name) => `${row.integration}:${name}`);
}

function toolNames(toolsJson: string): string[] {
  const parsed = JSON.parse(toolsJson) as { name: string }[];
  return parsed.map((t) => t.name);
}

/** A server's tools may take this many bytes (UTF-8 JSON) in policy's snapshot. */
const MAX_SERVER_TOOLS_BYTES = 256 * 1024;
/**
 * All of an org's servers' tools and its virtual servers together: the snapshot a gateway
 * fetches carries them beside the rules and must stay well under NATS's 1 MB message limit.
 */
export const MAX_ORG_TOOLS_BYTES = 600 * 1024;

/** A virtual server's share of MAX_ORG_TOOLS_BYTES: its fields as UTF-8 JSON. */
export function mcpVirtualServerBytes(server: {
  name: string;
  description: string;
  integrations: readonly string[];
  tools: readonly string[];
}): number {
  const { name, description, integrations, tools } = server;
  return Buffer.byteLength(JSON.stringify({ name, description, integrations, tools }));
}

interface NamedTool {
  name: string;
  [key: string]: unknown;
}

/** Checks a tool list a gateway read from a server: a JSON array of objects each with a valid, unique `name`. */
export function parseTools(toolsJson: string): NamedTool[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(toolsJson);
  } catch {
    throw new AppError('validation_failed', 'The tool list is not JSON', [{ path: 'toolsJson', message: 'not JSON' }]);
  }
  if (!Array.isArray(parsed) || parsed.length > MAX_TOOLS)
    throw new AppError('validation_failed', 'The tool list must be an array of at most 1000 tools', [
      { path: 'toolsJson', message: 'must be an array of at most 1000 tools' },
    ]);
  const seen = new Set<string>();
  const problems = parsed.flatMap((tool: unknown, i) => {
    const name = (tool as { name?: unknown } | null)?.name;
    if (typeof tool !== 'object' || tool === null || typeof name !== 'string' || !MCP_TOOL_NAME.test(name))
      return [{ path: `toolsJson.${i}.name`, message: 'must be a tool name of 1-128 letters, digits, _ . -' }];
    if (seen.has(name)) return [{ path: `toolsJson.${i}.name`, message: 'duplicate tool name' }];
    seen.add(name);
    return [];
  });
  if (problems.length > 0) throw new AppError('validation_failed', 'Invalid tool list', problems);
  return parsed as NamedTool[];
}

/**
 * The org's catalog of a server's tools after one more read. A server may list different
 * tools to different people (by their token's scopes), so one read never removes what
 * another person's read added: the catalog is every tool seen in a read within
 * `retainUnseenMs`, each with its latest definition. A tool the server stopped offering
 * drops out once no read has shown it for that long (the server itself refuses it at once).
 * Returned in name order, so equal catalogs digest equal.
 */
export function mergeTools(
  stored: { toolsJson: string; toolsSeenJson: string },
  read: NamedTool[],
  now: Date,
  retainUnseenMs: number,
): { json: string; digest: string; seenJson: string } {
  const tools = new Map((JSON.parse(stored.toolsJson) as NamedTool[]).map((t) => [t.name, t]));
  const seenAt = new Map(Object.entries(JSON.parse(stored.toolsSeenJson) as Record<string, string>));
  for (const tool of read) {
    tools.set(tool.name, tool);
    seenAt.set(tool.name, now.toISOString());
  }
  for (const name of [...tools.keys()]) {
    const seen = Date.parse(seenAt.get(name) ?? '');
    if (!(now.getTime() - seen < retainUnseenMs)) tools.delete(name);
  }
  const sorted = [...tools.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const json = JSON.stringify(sorted);
  if (Buffer.byteLength(json) > MAX_SERVER_TOOLS_BYTES)
    throw new AppError('validation_failed', 'The tool list is larger than one server may have', [
      { path: 'toolsJson', message: `at most ${MAX_SERVER_TOOLS_BYTES} bytes` },
    ]);
  return {
    json,
    digest: createHash('sha256').update(json).digest('hex'),
    seenJson: JSON.stringify(Object.fromEntries(sorted.map((t) => [t.name, seenAt.get(t.name)]))),
  };
}
