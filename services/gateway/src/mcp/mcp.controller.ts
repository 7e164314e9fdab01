import { Readable } from 'node:stream';

import { AppError } from '@context-gateway/errors';
import { MCP_VIRTUAL_SERVER_NAME } from '@context-gateway/proto';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Controller, Inject, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

import { Caller } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { Route, type RouteDefinition } from '../http/route.decorator.js';
import { type McpPolicyView, PolicyDecider } from '../policy/policy-decider.js';
import { McpGatewayService } from './mcp-gateway.service.js';

const description =
  'The Model Context Protocol endpoint of gateway mode (Streamable HTTP; revisions 2026-07-28 and 2025-11-25, ' +
  "negotiated per request). Authenticate with an access token acting for a person. It serves the org's remote " +
  "MCP servers' tools that policy allows this application for this person, as `<integration>.<tool>` " +
  '(docs/gateway-mode.md).';

const common: Omit<RouteDefinition, 'method' | 'summary'> = {
  path: 'mcp',
  description,
  tags: ['mcp'],
  auth: 'api_key',
  personTokens: true,
  success: { status: 200, description: 'A JSON-RPC answer (application/json, or text/event-stream).' },
  // rate_limited: too many open streams (subscriptions/listen, GET) for this application and person.
  errors: ['forbidden', 'rate_limited'],
};

const virtualDescription =
  "A named virtual server of the caller's organization (`PUT /v1/admin/organizations/{orgId}/mcp-virtual-servers/{name}`): " +
  'the same endpoint as /mcp (protocol revisions, authentication, Origin check), offering only the tools, resources and ' +
  'prompts of its selection that policy allows. An access token for the gateway is valid here as at /mcp: the gateway ' +
  'is one protected resource. A name the organization has not defined is 404 `mcp_virtual_server_not_found`.';

const virtualCommon: Omit<RouteDefinition, 'method' | 'summary'> = {
  ...common,
  path: 'mcp/v/:name',
  description: virtualDescription,
  // Any string: a name that cannot exist is not found, like one that does not.
  params: z.strictObject({ name: z.string().max(200).describe('The virtual server’s name.') }),
  // policy_unavailable: the org's virtual servers could not be read to find the name.
  errors: [...common.errors, 'mcp_virtual_server_not_found', 'policy_unavailable'],
};

/** /mcp and /mcp/v/<name>: the HTTP edge of gateway mode; the MCP work is McpGatewayService's (the official SDK). */
@Controller()
export class McpController {
  private readonly allowedOrigins: Set<string>;

  constructor(
    private readonly gateway: McpGatewayService,
    private readonly decider: PolicyDecider,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {
    this.allowedOrigins = new Set([new URL(env.GATEWAY_PUBLIC_URL).origin, ...env.MCP_ALLOWED_ORIGINS]);
  }

  @Route({ ...common, method: 'POST', summary: 'MCP: one JSON-RPC message' })
  post(@Caller() caller: ApplicationCaller, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.serve(caller, request, reply);
  }

  @Route({
    ...common,
    method: 'GET',
    summary: 'MCP: server-to-client stream (2025-11-25): tool list changes for this application and person',
  })
  get(@Caller() caller: ApplicationCaller, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.serve(caller, request, reply);
  }

  @Route({ ...common, method: 'DELETE', summary: 'MCP: end a session (stateless: 405)' })
  delete(@Caller() caller: ApplicationCaller, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.serve(caller, request, reply);
  }

  @Route({ ...virtualCommon, method: 'POST', summary: 'MCP at a virtual server: one JSON-RPC message' })
  postVirtual(
    @Caller() caller: ApplicationCaller,
    @Param('name') name: string,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.serve(caller, request, reply, name);
  }

  @Route({
    ...virtualCommon,
    method: 'GET',
    summary: 'MCP at a virtual server: server-to-client stream (2025-11-25): tool list changes',
  })
  getVirtual(
    @Caller() caller: ApplicationCaller,
    @Param('name') name: string,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.serve(caller, request, reply, name);
  }

  @Route({ ...virtualCommon, method: 'DELETE', summary: 'MCP at a virtual server: end a session (405)' })
  deleteVirtual(
    @Caller() caller: ApplicationCaller,
    @Param('name') name: string,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ) {
    return this.serve(caller, request, reply, name);
  }

  private async serve(caller: ApplicationCaller, request: FastifyRequest, reply: FastifyReply, virtualServer?: string) {
    const origin = request.headers.origin;
    // DNS rebinding: a browser page of another origin must not drive a person's tools.
    if (origin !== undefined && !this.allowedOrigins.has(origin))
      throw new AppError('forbidden', 'Requests from this Origin may not use /mcp', [
        { path: 'Origin', message: 'not an allowed origin (MCP_ALLOWED_ORIGINS)' },
      ]);
    const person = caller.onBehalfOf;
    if (person === undefined)
      throw new AppError(
        'forbidden',
        'Gateway mode acts for a person: use an access token issued for one (authorization code or token exchange)',
      );
    // Names are per organization: another org's virtual server is not found, like an unknown one.
    const view = virtualServer === undefined ? undefined : await this.virtualServerView(caller, virtualServer);
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string') headers.set(name, value);
      else if (Array.isArray(value)) headers.set(name, value.join(', '));
    }
    const abort = new AbortController();
    request.raw.once('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    const path = virtualServer === undefined ? '/mcp' : `/mcp/v/${virtualServer}`;
    const webRequest = new Request(new URL(path, this.env.GATEWAY_PUBLIC_URL), {
      method: request.method,
      headers,
      signal: abort.signal,
    });
    const response = await this.gateway.fetch({ ...caller, onBehalfOf: person }, webRequest, {
      authInfo: {
        token: caller.accessTokenId ?? caller.apiKeyId,
        clientId: caller.applicationId,
        scopes: caller.tokenScopes ?? [],
        extra: {
          gateway: {
            caller: { ...caller, onBehalfOf: person },
            request,
            ...(virtualServer !== undefined ? { virtualServer, view } : {}),
          },
        },
      },
      ...(request.method === 'POST' ? { parsedBody: request.body } : {}),
    });
    reply.status(response.status);
    response.headers.forEach((value, name) => {
      if (name !== 'content-length') reply.header(name, value);
    });
    if (!response.body) return reply.send();
    return reply.send(Readable.fromWeb(response.body));
  }

  /** The org's view when it has the virtual server; else not found. */
  private async virtualServerView(caller: ApplicationCaller, name: string): Promise<McpPolicyView> {
    if (MCP_VIRTUAL_SERVER_NAME.test(name)) {
      // The org's fresh view (the CONTROL watermark): a server created or deleted before this request is in force.
      const view = await this.decider.mcpView(caller);
      if (view.virtualServers.has(name)) return view;
    }
    throw new AppError('mcp_virtual_server_not_found', 'No virtual server of that name in your organization');
  }
}
