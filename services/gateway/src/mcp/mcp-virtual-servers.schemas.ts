import { INTEGRATION_KEY, MCP_TOOL_CAPABILITY, MCP_VIRTUAL_SERVER_NAME } from '@context-gateway/proto';
import { z } from 'zod';

import { id } from '../http/input.js';

const virtualServerName = z
  .string()
  .regex(MCP_VIRTUAL_SERVER_NAME)
  .describe('Lower-case letters, digits, `_` and `-` (1-63, starting with a letter or digit); unique in the org.');

export const mcpVirtualServerParams = z.strictObject({ orgId: id(), name: virtualServerName });

export const mcpVirtualServersParams = z.strictObject({ orgId: id() });

export const putMcpVirtualServerBody = z
  .strictObject({
    description: z
      .string()
      .max(500)
      .optional()
      .describe('Shown to admins, and to agents in the endpoint’s instructions.'),
    integrations: z
      .array(z.string().regex(INTEGRATION_KEY))
      .max(100)
      .optional()
      .describe('Whole integrations: every tool of their MCP servers, and their resources and prompts.'),
    tools: z
      .array(z.string().regex(MCP_TOOL_CAPABILITY))
      .max(1000)
      .optional()
      .describe('Single tools, as the capabilities policy rules name (`github:list_repos`); no resources or prompts.'),
  })
  // An empty selection would be an endpoint that offers nothing: surely a mistake.
  .refine((b) => (b.integrations?.length ?? 0) + (b.tools?.length ?? 0) > 0, {
    message: 'select at least one integration or tool',
    path: ['integrations'],
  });

export const mcpVirtualServerSchema = z.object({
  name: z.string(),
  description: z.string(),
  integrations: z.array(z.string()),
  tools: z.array(z.string()),
  url: z.string().describe('Its MCP endpoint: `<gateway>/mcp/v/<name>`.'),
  unavailable: z
    .array(z.string())
    .describe(
      'Entries of the selection that offer nothing now: an integration whose MCP server is not registered (any ' +
        'more), a tool its server has not listed to anyone yet.',
    ),
  updatedAt: z.string(),
});

export const mcpVirtualServerListSchema = z.object({ servers: z.array(mcpVirtualServerSchema) });
