import { Readable } from 'node:stream';

import { AppError } from '@context-gateway/errors';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Controller, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { Caller } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { Route, type RouteDefinition } from '../http/route.decorator.js';
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

/** /mcp: the HTTP edge of gateway mode; the MCP work is McpGatewayService's (the official SDK). */
@Controller()
export class McpController {
  private readonly allowedOrigins: Set<string>;

  constructor(
    private readonly gateway: McpGatewayService,
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

  private async serve(caller: ApplicationCaller, request: FastifyRequest, reply: FastifyReply) {
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
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string') headers.set(name, value);
      else if (Array.isArray(value)) headers.set(name, value.join(', '));
    }
    const abort = new AbortController();
    request.raw.once('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    const webRequest = new Request(new URL('/mcp', this.env.GATEWAY_PUBLIC_URL), {
      method: request.method,
      headers,
      signal: abort.signal,
    });
    const response = await this.gateway.fetch({ ...caller, onBehalfOf: person }, webRequest, {
      authInfo: {
        token: caller.accessTokenId ?? caller.apiKeyId,
        clientId: caller.applicationId,
        scopes: caller.tokenScopes ?? [],
        extra: { gateway: { caller: { ...caller, onBehalfOf: person }, request } },
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
}
