import {
  DeleteMcpServerRequestSchema,
  DeleteMcpVirtualServerRequestSchema,
  DeleteRuleRequestSchema,
  DeleteRuleResponseSchema,
  DeleteUserRuleRequestSchema,
  ExplainRequestSchema,
  ExplainResponseSchema,
  GetCompiledRulesRequestSchema,
  GetCompiledRulesResponseSchema,
  GetOrgIntegrationsRequestSchema,
  GetOrgIntegrationsResponseSchema,
  ListMcpServersRequestSchema,
  ListMcpServersResponseSchema,
  ListMcpVirtualServersRequestSchema,
  ListMcpVirtualServersResponseSchema,
  ListRulesRequestSchema,
  ListRulesResponseSchema,
  ListUserRulesRequestSchema,
  McpServerResponseSchema,
  McpVirtualServerResponseSchema,
  PutApplicationRuleRequestSchema,
  PutMcpServerRequestSchema,
  PutMcpVirtualServerRequestSchema,
  PutOrgRuleRequestSchema,
  PutRuleResponseSchema,
  PutUserRuleRequestSchema,
  type RuleSpec,
  SetMcpToolsRequestSchema,
  SetOrgIntegrationsRequestSchema,
  SetOrgIntegrationsResponseSchema,
  UserRuleChangeResponseSchema,
} from '../gen/contextgateway/policy/v1/policy_pb.js';
import { defineRpc } from './descriptors.js';
import { check, type ValidationProblem } from './validation.js';

const P = 'policy.v1';

/** A user id: opaque to policy (identity owns it), bounded. */
const userId = (value: string, path: string): ValidationProblem[] => [
  ...check.nonEmpty(value, path),
  ...check.maxLength(value, 200, path),
];
const INTEGRATION_KEY_SOURCE = '[a-z0-9][a-z0-9_-]{0,99}';
/** An integration's key (what `<integration>:<tool>` starts with): lower-case letters, digits, `_` and `-`, 1-100. */
export const INTEGRATION_KEY = new RegExp(`^${INTEGRATION_KEY_SOURCE}$`);
const MCP_TOOL_NAME_SOURCE = '[A-Za-z0-9_.-]{1,128}';
/** MCP's own rule for tool names (2025-11-25 "Tool names"): what may follow `<integration>:`. */
export const MCP_TOOL_NAME = new RegExp(`^${MCP_TOOL_NAME_SOURCE}$`);

const integrationKey = (value: string, path: string): ValidationProblem[] =>
  INTEGRATION_KEY.test(value)
    ? []
    : [{ path, message: 'must be an integration name (lower-case letters, digits, _ and -)' }];

/** Tool name -> argument name, both bounded. */
function resourceArguments(map: Record<string, string>, path: string): ValidationProblem[] {
  const entries = Object.entries(map);
  if (entries.length > 500) return [{ path, message: 'at most 500 entries' }];
  return entries.flatMap(([tool, argument]) => [
    ...check.nonEmpty(tool, `${path}.${tool}`),
    ...check.maxLength(tool, 128, `${path}.${tool}`),
    ...check.nonEmpty(argument, `${path}.${tool}`),
    ...check.maxLength(argument, 128, `${path}.${tool}`),
  ]);
}

/** A virtual server's name: one URL path segment (`/mcp/v/<name>`), lower case. */
export const MCP_VIRTUAL_SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const virtualServerName = (value: string, path: string): ValidationProblem[] =>
  MCP_VIRTUAL_SERVER_NAME.test(value)
    ? []
    : [{ path, message: 'must be 1-63 lower-case letters, digits, _ and - (starting with a letter or digit)' }];
/** A tool capability `<integration>:<tool>`: an integration key, then an MCP tool name. */
export const MCP_TOOL_CAPABILITY = new RegExp(`^${INTEGRATION_KEY_SOURCE}:${MCP_TOOL_NAME_SOURCE}$`);

/** A virtual server's selection: integrations and `<integration>:<tool>` capabilities, bounded, one at least. */
function virtualServerSelection(m: { integrations: string[]; tools: string[] }): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  if (m.integrations.length + m.tools.length === 0)
    problems.push({ path: 'integrations', message: 'select at least one integration or tool' });
  if (m.integrations.length > 100) problems.push({ path: 'integrations', message: 'at most 100 integrations' });
  if (m.tools.length > 1000) problems.push({ path: 'tools', message: 'at most 1000 tools' });
  m.integrations.forEach((i, n) => problems.push(...integrationKey(i, `integrations.${n}`)));
  m.tools.forEach((t, n) => {
    if (!MCP_TOOL_CAPABILITY.test(t))
      problems.push({ path: `tools.${n}`, message: 'must be a capability <integration>:<tool>' });
  });
  return problems;
}

const optionalUuid = (value: string, path: string): ValidationProblem[] =>
  value === '' ? [] : check.uuid(value, path);

/** Shape checks only; the engine's own validation (targets, resource patterns) runs in the service. */
function ruleSpec(rule: RuleSpec | undefined, path: string): ValidationProblem[] {
  if (!rule) return [{ path, message: 'must be set' }];
  const problems: ValidationProblem[] = [...check.enumSet(rule.effect, `${path}.effect`)];
  if ((rule.integration === '') === (rule.capability === '')) {
    problems.push({ path: `${path}.target`, message: 'exactly one of integration or capability must be set' });
  }
  problems.push(
    ...check.maxLength(rule.integration, 100, `${path}.integration`),
    ...check.maxLength(rule.capability, 200, `${path}.capability`),
  );
  if (rule.resources.length > 100) problems.push({ path: `${path}.resources`, message: 'at most 100 patterns' });
  rule.resources.forEach((r, i) =>
    problems.push(...check.nonEmpty(r, `${path}.resources.${i}`), ...check.maxLength(r, 500, `${path}.resources.${i}`)),
  );
  problems.push(
    ...optionalUuid(rule.applicationId, `${path}.applicationId`),
    ...check.maxLength(rule.description, 500, `${path}.description`),
  );
  return problems;
}

/**
 * policy's request/reply contracts. Admin verbs (org and application layers, org
 * integrations) and user verbs (a user's own layer) are separate subjects; the gateway's
 * cache fill (get_compiled_rules) is the only one on a data-plane path.
 */
export const policyRpc = {
  putOrgRule: defineRpc({
    subject: `${P}.put_org_rule`,
    callers: ['gateway'],
    request: PutOrgRuleRequestSchema,
    response: PutRuleResponseSchema,
    // Returns only after the change event is on the CONTROL stream (docs/policy.md).
    timeoutMs: 5_000,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...ruleSpec(m.rule, 'rule')],
  }),
  putApplicationRule: defineRpc({
    subject: `${P}.put_application_rule`,
    callers: ['gateway'],
    request: PutApplicationRuleRequestSchema,
    response: PutRuleResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...ruleSpec(m.rule, 'rule'),
    ],
  }),
  deleteRule: defineRpc({
    subject: `${P}.delete_rule`,
    callers: ['gateway'],
    request: DeleteRuleRequestSchema,
    response: DeleteRuleResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.ruleId, 'ruleId')],
  }),
  listRules: defineRpc({
    subject: `${P}.list_rules`,
    callers: ['gateway'],
    request: ListRulesRequestSchema,
    response: ListRulesResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...optionalUuid(m.applicationId, 'applicationId')],
  }),
  setOrgIntegrations: defineRpc({
    subject: `${P}.set_org_integrations`,
    callers: ['gateway'],
    request: SetOrgIntegrationsRequestSchema,
    response: SetOrgIntegrationsResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...(m.integrations.length > 200 ? [{ path: 'integrations', message: 'at most 200' }] : []),
      ...m.integrations.flatMap((i, n) => [
        ...check.nonEmpty(i, `integrations.${n}`),
        ...check.maxLength(i, 100, `integrations.${n}`),
      ]),
    ],
  }),
  getOrgIntegrations: defineRpc({
    subject: `${P}.get_org_integrations`,
    callers: ['gateway'],
    request: GetOrgIntegrationsRequestSchema,
    response: GetOrgIntegrationsResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  putUserRule: defineRpc({
    subject: `${P}.put_user_rule`,
    callers: ['gateway'],
    request: PutUserRuleRequestSchema,
    response: UserRuleChangeResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...userId(m.userId, 'userId'), ...ruleSpec(m.rule, 'rule')],
  }),
  deleteUserRule: defineRpc({
    subject: `${P}.delete_user_rule`,
    callers: ['gateway'],
    request: DeleteUserRuleRequestSchema,
    response: UserRuleChangeResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...userId(m.userId, 'userId'), ...check.uuid(m.ruleId, 'ruleId')],
  }),
  listUserRules: defineRpc({
    subject: `${P}.list_user_rules`,
    callers: ['gateway'],
    request: ListUserRulesRequestSchema,
    response: ListRulesResponseSchema,
    validate: (m) => userId(m.userId, 'userId'),
  }),
  explain: defineRpc({
    subject: `${P}.explain`,
    callers: ['gateway'],
    request: ExplainRequestSchema,
    response: ExplainResponseSchema,
    validate: (m) => [
      ...optionalUuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...userId(m.userId, 'userId'),
      ...check.nonEmpty(m.capability, 'capability'),
      ...check.maxLength(m.capability, 200, 'capability'),
      ...check.maxLength(m.resource, 500, 'resource'),
    ],
  }),
  putMcpServer: defineRpc({
    subject: `${P}.put_mcp_server`,
    callers: ['gateway'],
    request: PutMcpServerRequestSchema,
    response: McpServerResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...integrationKey(m.integration, 'integration'),
      ...check.nonEmpty(m.url, 'url'),
      ...check.maxLength(m.url, 2000, 'url'),
      ...resourceArguments(m.resourceArguments, 'resourceArguments'),
    ],
  }),
  listMcpServers: defineRpc({
    subject: `${P}.list_mcp_servers`,
    callers: ['gateway'],
    request: ListMcpServersRequestSchema,
    response: ListMcpServersResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  deleteMcpServer: defineRpc({
    subject: `${P}.delete_mcp_server`,
    callers: ['gateway'],
    request: DeleteMcpServerRequestSchema,
    response: McpServerResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...integrationKey(m.integration, 'integration')],
  }),
  putMcpVirtualServer: defineRpc({
    subject: `${P}.put_mcp_virtual_server`,
    callers: ['gateway'],
    request: PutMcpVirtualServerRequestSchema,
    response: McpVirtualServerResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...virtualServerName(m.name, 'name'),
      ...check.maxLength(m.description, 500, 'description'),
      ...virtualServerSelection(m),
    ],
  }),
  listMcpVirtualServers: defineRpc({
    subject: `${P}.list_mcp_virtual_servers`,
    callers: ['gateway'],
    request: ListMcpVirtualServersRequestSchema,
    response: ListMcpVirtualServersResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  deleteMcpVirtualServer: defineRpc({
    subject: `${P}.delete_mcp_virtual_server`,
    callers: ['gateway'],
    request: DeleteMcpVirtualServerRequestSchema,
    response: McpVirtualServerResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...virtualServerName(m.name, 'name')],
  }),
  // A gateway read a server's tool list and it differs from the stored one: on the call path.
  setMcpTools: defineRpc({
    subject: `${P}.set_mcp_tools`,
    callers: ['gateway'],
    request: SetMcpToolsRequestSchema,
    response: McpServerResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...integrationKey(m.integration, 'integration'),
      ...check.maxLength(m.toolsJson, 512_000, 'toolsJson'),
      ...check.nonEmpty(m.url, 'url'),
      ...check.maxLength(m.url, 2000, 'url'),
      ...(m.retainUnseenMs < 1_000n || m.retainUnseenMs > 30n * 86_400_000n
        ? [{ path: 'retainUnseenMs', message: 'must be between 1 s and 30 days' }]
        : []),
    ],
  }),
  getCompiledRules: defineRpc({
    subject: `${P}.get_compiled_rules`,
    callers: ['gateway'],
    request: GetCompiledRulesRequestSchema,
    response: GetCompiledRulesResponseSchema,
    // On a data-plane path (a gateway refreshing its cache): short.
    timeoutMs: 1_500,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
} as const;
