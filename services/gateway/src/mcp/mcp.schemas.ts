import { z } from 'zod';

import { id } from '../http/input.js';

export const mcpServerParams = z.strictObject({
  orgId: id(),
  integration: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,99}$/)
    .describe('The integration whose connections the server is called with; its tools are `<integration>:<tool>`.'),
});

export const mcpServersParams = z.strictObject({ orgId: id() });

export const putMcpServerBody = z.strictObject({
  url: z.string().min(1).max(2000).describe("The server's Streamable HTTP endpoint (https)."),
  resourceArguments: z
    .record(z.string().min(1).max(128), z.string().min(1).max(128))
    .optional()
    .describe(
      'Tool name -> the argument whose value is the resource a call touches, for resource-scoped rules (`{"create_issue": "repo"}`).',
    ),
});

const toolSchema = z.object({
  name: z.string().describe('The tool as the server names it.'),
  capability: z.string().describe('`<integration>:<tool>`: what policy rules name.'),
  mcpName: z.string().describe('The name agents see at /mcp: `<integration>.<tool>`.'),
  description: z.string().nullable(),
  readOnly: z.boolean().nullable().describe("The server's readOnlyHint (a hint, never trusted for access)."),
  destructive: z.boolean().nullable().describe("The server's destructiveHint."),
});

export const mcpServerSchema = z.object({
  integration: z.string(),
  url: z.string(),
  resourceArguments: z.record(z.string(), z.string()),
  toolsReadAt: z.string().nullable().describe('When the tool list was last read (null until a first read).'),
  tools: z.array(toolSchema),
});

export const mcpServerListSchema = z.object({ servers: z.array(mcpServerSchema) });
