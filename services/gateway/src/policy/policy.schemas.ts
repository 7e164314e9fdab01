import { z } from 'zod';

import { id } from '../http/input.js';

/** A rule as written: exactly one target, optional resource patterns and app scoping. */
export const ruleBody = z
  .strictObject({
    effect: z.enum(['allow', 'deny']),
    integration: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .describe('A whole integration (`github`): every capability of it.'),
    capability: z.string().min(1).max(200).optional().describe('One capability (`github:create_issue`).'),
    resources: z
      .array(z.string().min(1).max(500))
      .min(1)
      .max(100)
      .optional()
      .describe('Only these resources: exact names or a prefix ending in `*` (`repo:acme/*`).'),
    applicationId: id().optional().describe('Only requests made by this application.'),
    description: z.string().max(500).optional(),
    approvalRequired: z
      .boolean()
      .optional()
      .describe(
        "Allow rules of the org and user layers: each MCP tool call this rule allows waits for the person's passkey approval of that exact call.",
      ),
  })
  .refine((r) => (r.integration === undefined) !== (r.capability === undefined), {
    message: 'exactly one of integration or capability',
    path: ['integration'],
  });

const ruleSchema = z.object({
  id: z.string(),
  layer: z.enum(['org', 'user', 'application']),
  subject: z.string(),
  effect: z.enum(['allow', 'deny']),
  integration: z.string().optional(),
  capability: z.string().optional(),
  resources: z.array(z.string()).optional(),
  applicationId: z.string().optional(),
  description: z.string().optional(),
  approvalRequired: z.boolean().optional(),
});

export const putRuleResponse = z.object({
  rule: ruleSchema,
  revision: z.number().describe('The org revision from which the rule is in force.'),
});
export const userRuleResponse = z.object({
  rule: ruleSchema,
  revisions: z
    .array(z.object({ orgId: z.string(), revision: z.number() }))
    .describe('The orgs whose rules changed (those whose apps you granted).'),
});
export const ruleListSchema = z.object({ rules: z.array(ruleSchema), revision: z.number().optional() });
export const integrationsBody = z.strictObject({ integrations: z.array(z.string().min(1).max(100)).max(200) });
export const integrationsSchema = z.object({ integrations: z.array(z.string()), revision: z.number() });

export const explainBody = z.strictObject({
  applicationId: id(),
  userId: z.string().min(1).max(200),
  capability: z.string().min(1).max(200),
  resource: z.string().max(500).optional(),
});
export const explanationSchema = z.object({
  allowed: z.boolean(),
  decidedBy: z
    .enum(['org', 'user', 'application'])
    .nullable()
    .describe(
      'The layer that refused (first in org → user → application order); null when allowed or the capability is unknown.',
    ),
  reason: z.enum(['allowed', 'deny_rule', 'no_allow', 'unknown_capability']),
  matched: z.array(
    z.object({
      layer: z.enum(['org', 'user', 'application']),
      effect: z.enum(['allow', 'deny']),
      ruleIds: z.array(z.string()),
    }),
  ),
  approval: z
    .object({ layer: z.enum(['org', 'user', 'application']), ruleIds: z.array(z.string()) })
    .optional()
    .describe(
      'Allowed, but only once the person approves each call with their passkey (an `approvalRequired` rule): the first asking layer and its rules. Only an MCP call at /mcp can wait for that; a credential or a records query is refused with `approval_required`.',
    ),
});

export type RuleBody = z.infer<typeof ruleBody>;
export type ExplainBody = z.infer<typeof explainBody>;
