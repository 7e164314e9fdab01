import type { McpVirtualServer } from '@context-gateway/proto';

/** An org's named virtual server as the gateway uses it: decoded once per policy revision. */
export interface VirtualServerView {
  name: string;
  description: string;
  /** Whole integrations: every tool, resource and prompt of their servers. */
  integrations: ReadonlySet<string>;
  /** Single tools, as capabilities `<integration>:<tool>`. */
  tools: ReadonlySet<string>;
}

export function virtualServerView(wire: McpVirtualServer): VirtualServerView {
  return {
    name: wire.name,
    description: wire.description,
    integrations: new Set(wire.integrations),
    tools: new Set(wire.tools),
  };
}

/** The selection of a virtual server as one string: equal exactly when two selections are. */
export function selectionKey(server: VirtualServerView): string {
  return JSON.stringify([[...server.integrations].sort(), [...server.tools].sort()]);
}

/**
 * What one MCP endpoint offers of the org's MCP servers: everything at `/mcp`, a virtual
 * server's selection at `/mcp/v/<name>`. A selection only narrows: whatever it offers is
 * still decided by the three layers on every request.
 */
export interface McpSelection {
  /** The virtual server's name; undefined for the org's whole endpoint. */
  readonly name: string | undefined;
  readonly description: string | undefined;
  /** Some tool of the integration's server may be offered (its list is worth reading). */
  offersServer(integration: string): boolean;
  offersTool(integration: string, tool: string): boolean;
  /** The whole integration is selected: its resources and prompts are offered too. */
  offersWhole(integration: string): boolean;
}

const EVERYTHING: McpSelection = {
  name: undefined,
  description: undefined,
  offersServer: () => true,
  offersTool: () => true,
  offersWhole: () => true,
};

/**
 * The selection an endpoint serves. `name` undefined: the org's whole endpoint. A name the
 * view no longer has (deleted since the request was let in) offers nothing, never everything.
 */
export function selectionOf(
  virtualServers: ReadonlyMap<string, VirtualServerView>,
  name: string | undefined,
): McpSelection {
  if (name === undefined) return EVERYTHING;
  const server = virtualServers.get(name);
  const integrations = server?.integrations ?? new Set<string>();
  const tools = server?.tools ?? new Set<string>();
  const toolIntegrations = new Set([...tools].map((t) => t.slice(0, t.indexOf(':'))));
  return {
    name,
    description: server?.description,
    offersServer: (integration) => integrations.has(integration) || toolIntegrations.has(integration),
    offersTool: (integration, tool) => integrations.has(integration) || tools.has(`${integration}:${tool}`),
    offersWhole: (integration) => integrations.has(integration),
  };
}
