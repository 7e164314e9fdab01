import type { Decision } from '@context-gateway/policy-engine';

import type { ApplicationCaller } from '../auth/auth.types.js';
import type { McpServerView } from './mcp-server-view.js';

/**
 * Denied only because the person has not consented yet (no grant covering the tool), while
 * the org and the application allow it: listed, and a call leads to the connect flow.
 */
export function awaitsConsent(decision: Decision): boolean {
  if (decision.allowed || decision.decidedBy !== 'user' || decision.reason !== 'no_allow') return false;
  const allows = (layer: 'org' | 'application') =>
    decision.matched.some((m) => m.layer === layer && m.effect === 'allow');
  return allows('org') && allows('application');
}

/** An access token reaches a tool only when it carries `<integration>:tools` or the tool's own capability. */
export function tokenCovers(caller: ApplicationCaller, integration: string, capability: string): boolean {
  if (!caller.tokenScopes) return true;
  return caller.tokenScopes.includes(`${integration}:tools`) || caller.tokenScopes.includes(capability);
}

/** The resource a call touches, read from the argument its registration names. */
export function resourceOf(
  server: McpServerView,
  tool: string,
  args: Record<string, unknown> | undefined,
): string | undefined {
  // Own entries only: a tool may be called `__proto__` or `constructor`.
  const argument = Object.hasOwn(server.resourceArguments, tool) ? server.resourceArguments[tool] : undefined;
  if (!argument) return undefined;
  const value = args?.[argument];
  // A resource-scoped rule must never be dodged by leaving the argument out or mistyping it:
  // a missing or non-string value is the empty resource, which only unscoped rules match.
  return typeof value === 'string' ? value : '';
}
