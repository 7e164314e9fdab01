import { createHash } from 'node:crypto';

import { AppError } from '@context-gateway/errors';

import type { McpServer as McpServerRow } from '../generated/prisma/client.js';

/** MCP's own rule for tool names (2025-11-25 "Tool names"): what may follow `<integration>:`. */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
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

/**
 * Checks a tool list a gateway read from a server: a JSON array of objects each with a
 * valid, unique `name`. Returned re-serialized in name order, so equal lists digest equal.
 */
export function canonicalTools(toolsJson: string): { json: string; digest: string } {
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
    if (typeof tool !== 'object' || tool === null || typeof name !== 'string' || !TOOL_NAME.test(name))
      return [{ path: `toolsJson.${i}.name`, message: 'must be a tool name of 1-128 letters, digits, _ . -' }];
    if (seen.has(name)) return [{ path: `toolsJson.${i}.name`, message: 'duplicate tool name' }];
    seen.add(name);
    return [];
  });
  if (problems.length > 0) throw new AppError('validation_failed', 'Invalid tool list', problems);
  const sorted = [...(parsed as { name: string }[])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const json = JSON.stringify(sorted);
  return { json, digest: createHash('sha256').update(json).digest('hex') };
}
