import { INTEGRATION_KEY } from '@context-gateway/proto';
import { z } from 'zod';

import { id } from '../http/input.js';

export const mcpServerParams = z.strictObject({
  orgId: id(),
  integration: z
    .string()
    .regex(INTEGRATION_KEY)
    .describe('The integration whose connections the server is called with; its tools are `<integration>:<tool>`.'),
});

export const mcpServersParams = z.strictObject({ orgId: id() });

export const putMcpServerBody = z
  .strictObject({
    url: z.string().min(1).max(2000).describe("The server's Streamable HTTP endpoint (https)."),
    auth: z
      .enum(['connection', 'mcp_oauth', 'none'])
      .default('connection')
      .describe(
        "How the gateway authenticates upstream for a person: `connection` (default) — the person's connection to the " +
          "integration (the catalog's OAuth or an API key); `mcp_oauth` — a connection the person makes through the " +
          "server's own OAuth authorization server, discovered from its protected resource metadata (RFC 9728); `none` — " +
          'no credential at all.',
      ),
    oauthClient: z
      .strictObject({
        clientId: z.string().min(1).max(500),
        clientSecret: z
          .string()
          .min(1)
          .max(500)
          .optional()
          .describe("Sealed at rest under the broker's key; never returned, never logged."),
      })
      .optional()
      .describe(
        "`mcp_oauth` only: a client registered beforehand at the server's authorization server. Without one the " +
          'gateway uses a Client ID Metadata Document where supported, else dynamic client registration.',
      ),
    resourceArguments: z
      .record(z.string().min(1).max(128), z.string().min(1).max(128))
      .optional()
      .describe(
        'Tool name -> the argument whose value is the resource a call touches, for resource-scoped rules (`{"create_issue": "repo"}`).',
      ),
  })
  // A client for the server's own authorization server means nothing with another auth.
  .refine((b) => b.auth === 'mcp_oauth' || b.oauthClient === undefined, {
    path: ['oauthClient'],
    message: 'only with auth "mcp_oauth"',
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
  auth: z.enum(['connection', 'mcp_oauth', 'none']),
  oauth: z
    .object({
      resource: z.string().describe('The RFC 8707 resource every token is asked for.'),
      issuer: z.string().describe("The server's authorization server (its metadata's issuer, checked)."),
      clientSource: z
        .enum(['pre_registered', 'client_id_metadata_document', 'dynamic_registration'])
        .describe('How the gateway is identified there.'),
      scopes: z.array(z.string()).describe('The scopes a person is asked for.'),
      redirectUri: z
        .string()
        .describe(
          "This registration's redirect URI at the authorization server (its own, against mix-up): register a pre-registered client with it.",
        ),
    })
    .nullable()
    .describe('For `mcp_oauth`: what discovery found (null otherwise, or when the broker did not answer).'),
  resourceArguments: z.record(z.string(), z.string()),
  toolsReadAt: z.string().nullable().describe('When the tool list was last read (null until a first read).'),
  tools: z.array(toolSchema),
});

export const mcpServerListSchema = z.object({ servers: z.array(mcpServerSchema) });
