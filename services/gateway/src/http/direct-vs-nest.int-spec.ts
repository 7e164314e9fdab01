import { type IncomingMessage, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';

import { AppError } from '@context-gateway/errors';
import { LOGGER, ProblemFilter } from '@context-gateway/service-kit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  type CanActivate,
  Controller,
  type ExecutionContext,
  Injectable,
  Module,
  type Provider,
  Req,
  Res,
} from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR, DiscoveryModule, NestFactory, Reflector } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyReply, FastifyRequest } from 'fastify';
import pino from 'pino';

import { type AuditRecord, AuditRecorder } from '../audit/audit-recorder.js';
import { AuditRouteInterceptor } from '../audit/audit-route.interceptor.js';
import { setAuditSubject } from '../audit/audit-subject.js';
import { callerOf } from '../auth/auth.decorators.js';
import { AuthGuard } from '../auth/auth.guard.js';
import { insufficientScope } from '../oauth/access-tokens.js';
import { connectionParams, recordsQuery } from '../records/records.schemas.js';
import { DirectRoutesInstaller } from './direct-routes.js';
import { gatewayErrorPage } from './error-pages.js';
import { DirectRoute, Route, ROUTE_DEFINITION, type RouteDefinition } from './route.decorator.js';

/**
 * The records query's route served twice, by Nest's router (@Route) and by Fastify directly
 * (@DirectRoute), with the same guard, audit interceptor, filter and handler body: every
 * request below must get the same answer (status, headers, body) and leave the same trail
 * (audit records, what the handler saw, the route and status the access log and metrics read).
 */

type Side = 'nest' | 'direct';

const definition = {
  method: 'GET',
  path: 'connections/:connectionId/records',
  summary: 'records',
  tags: ['records'],
  auth: 'api_key',
  personTokens: true,
  params: connectionParams,
  query: recordsQuery,
  success: { status: 200, description: 'records' },
  errors: [],
  audit: { action: 'data_query' },
} as const satisfies RouteDefinition;

/** What each side's handler saw, audited and answered; emptied before every case. */
const seen: Record<Side, { handler: unknown[]; audit: AuditRecord[]; responses: unknown[] }> = {
  nest: { handler: [], audit: [], responses: [] },
  direct: { handler: [], audit: [], responses: [] },
};

/** The records handler's shape, its failures chosen by the X-Fail header. */
async function listRecords(side: Side, request: FastifyRequest, reply: FastifyReply): Promise<Buffer> {
  const caller = callerOf(request);
  const query = request.query as { type?: string; limit: number };
  const params = request.params as { connectionId: string };
  setAuditSubject(request, { connectionId: params.connectionId, resource: query.type ?? '*' });
  seen[side].handler.push({ caller, query, params });
  const fail = request.headers['x-fail'];
  if (fail === 'scope')
    throw insufficientScope(reply, { GATEWAY_PUBLIC_URL: 'https://gw.example' }, ['spotify:read:playlists']);
  if (fail === 'not-found') throw new AppError('connection_not_found');
  if (fail === 'crash') throw new Error('boom');
  await new Promise((resolve) => setTimeout(resolve, 1));
  void reply.header('content-type', 'application/json; charset=utf-8');
  return Buffer.from(`{"records":[],"limit":${query.limit}}`);
}

@Controller('v1')
class NestRecords {
  @Route(definition)
  async list(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply): Promise<Buffer> {
    return listRecords('nest', request, reply);
  }
}

@Controller('v1')
class DirectRecords {
  @DirectRoute(definition)
  async list(request: FastifyRequest, reply: FastifyReply): Promise<Buffer> {
    return listRecords('direct', request, reply);
  }
}

/** The auth guard's outcomes, chosen by the X-Auth header. */
@Injectable()
class StubAuthGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.reflector.get<RouteDefinition | undefined>(ROUTE_DEFINITION, context.getHandler())) return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    await Promise.resolve();
    const auth = request.headers['x-auth'];
    if (auth === 'none') throw new AppError('unauthenticated', 'Send an API key');
    if (auth === 'refused') return false;
    if (auth === 'rate-limited') {
      void context.switchToHttp().getResponse<FastifyReply>().header('retry-after', '7');
      throw new AppError('rate_limited', 'slow down');
    }
    request.caller = { kind: 'application', orgId: 'o', applicationId: 'a', apiKeyId: 'k' };
    return true;
  }
}

/** An audit trail that fails for request ids starting `audit-down`, as a lost NATS stream would. */
function recorderFor(side: Side): Pick<AuditRecorder, 'record'> {
  return {
    record: async (record: AuditRecord) => {
      await Promise.resolve();
      if (record.requestId?.startsWith('audit-down')) throw new AppError('audit_unavailable', 'audit down');
      const { latencyMs: _latency, ...timeless } = record;
      seen[side].audit.push(timeless);
      return `event-${seen[side].audit.length}`;
    },
  };
}

/** The app as runService builds it, with `side`'s controller and the APP_GUARD the gateway's AuthModule uses. */
async function boot(side: Side): Promise<NestFastifyApplication> {
  const common: Provider[] = [
    { provide: AuditRecorder, useValue: recorderFor(side) },
    { provide: APP_INTERCEPTOR, useClass: AuditRouteInterceptor },
    { provide: LOGGER, useValue: pino({ level: 'silent' }) },
    { provide: AuthGuard, useClass: StubAuthGuard },
    { provide: APP_GUARD, useExisting: AuthGuard },
  ];
  @Module(
    side === 'nest'
      ? { controllers: [NestRecords], providers: common }
      : { imports: [DiscoveryModule], controllers: [DirectRecords], providers: [...common, DirectRoutesInstaller] },
  )
  class Root {}
  const adapter = new FastifyAdapter({
    bodyLimit: 64 * 1024,
    genReqId: (request: IncomingMessage) => String(request.headers['x-request-id']),
    forceCloseConnections: 'idle',
  });
  const app = await NestFactory.create<NestFastifyApplication>(Root, adapter, { logger: false, abortOnError: false });
  const fastify = app.getHttpAdapter().getInstance();
  // What the request tracing, access log and HTTP metrics (service-kit) read of every request.
  fastify.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  fastify.addHook('onResponse', (request, reply, done) => {
    seen[side].responses.push({
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      url: request.url,
      status: reply.statusCode,
    });
    done();
  });
  app.useGlobalFilters(new ProblemFilter(pino({ level: 'silent' }), gatewayErrorPage));
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app;
}

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
}

function send(
  app: NestFastifyApplication,
  method: string,
  path: string,
  headers: Record<string, string>,
  payload = '',
) {
  const { port } = app.getHttpServer().address() as AddressInfo;
  const lengths = payload === '' ? {} : { 'content-length': String(Buffer.byteLength(payload)) };
  return new Promise<Answer>((resolve, reject) => {
    const request = httpRequest(
      { host: '127.0.0.1', port, method, path, headers: { ...headers, ...lengths } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const { date: _date, ...timeless } = response.headers;
          resolve({
            status: response.statusCode ?? 0,
            headers: timeless,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    request.on('error', reject);
    request.setTimeout(5_000, () => request.destroy(new Error(`no answer to ${method} ${path} in 5 s`)));
    request.end(payload === '' ? undefined : payload);
  });
}

/** Fastify's onResponse runs as the answer finishes, maybe after the client has read it. */
async function responded(side: Side): Promise<void> {
  for (let waited = 0; seen[side].responses.length === 0; waited += 5) {
    if (waited > 5_000) throw new Error(`${side}: no onResponse in 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const ID = '6f96c6d0-8f4e-4b55-9d1e-0c6bb1b0a1f2';
const RECORDS = `/v1/connections/${ID}/records`;
const JSON_BODY = { 'content-type': 'application/json' };

// [case, method, path, headers, body ('' for none)]: five fixed elements, so Jest passes no `done`.
const CASES: [string, string, string, Record<string, string>, string][] = [
  ['a page of records', 'GET', `${RECORDS}?limit=5`, {}, ''],
  ['HEAD', 'HEAD', `${RECORDS}?limit=5`, {}, ''],
  ['the default limit', 'GET', RECORDS, {}, ''],
  ['no credentials (401)', 'GET', RECORDS, { 'x-auth': 'none' }, ''],
  ['a guard that says no (403)', 'GET', RECORDS, { 'x-auth': 'refused' }, ''],
  ['rate limited, with Retry-After (429)', 'GET', RECORDS, { 'x-auth': 'rate-limited' }, ''],
  ['an unknown query field', 'GET', `${RECORDS}?limt=2`, {}, ''],
  ['a repeated query field', 'GET', `${RECORDS}?limit=2&limit=3`, {}, ''],
  ['a limit that is no number', 'GET', `${RECORDS}?limit=abc`, {}, ''],
  ['an id that is no uuid', 'GET', '/v1/connections/not-a-uuid/records', {}, ''],
  ['an upper-case id', 'GET', `/v1/connections/${ID.toUpperCase()}/records`, {}, ''],
  ['an encoded traversal as id', 'GET', '/v1/connections/%2e%2e%2f/records', {}, ''],
  ['a double-encoded traversal as id', 'GET', '/v1/connections/%252e%252e/records', {}, ''],
  ['a semicolon in the id', 'GET', `/v1/connections/${ID};x/records`, {}, ''],
  ['an empty id (404)', 'GET', '/v1/connections//records', {}, ''],
  ['a trailing slash', 'GET', `${RECORDS}/`, {}, ''],
  ['an upper-case /V1', 'GET', `/V1/connections/${ID}/records`, {}, ''],
  [
    'a CORS preflight (OPTIONS)',
    'OPTIONS',
    RECORDS,
    { origin: 'https://x.example', 'access-control-request-method': 'GET' },
    '',
  ],
  ['a POST', 'POST', RECORDS, JSON_BODY, '{}'],
  ['a GET with a body', 'GET', RECORDS, JSON_BODY, '{"a":1}'],
  ['insufficient_scope, with WWW-Authenticate', 'GET', `${RECORDS}?type=media.playlist`, { 'x-fail': 'scope' }, ''],
  ['connection_not_found', 'GET', RECORDS, { 'x-fail': 'not-found' }, ''],
  ['a handler crash (500)', 'GET', RECORDS, { 'x-fail': 'crash' }, ''],
  ['audit_unavailable after a success', 'GET', RECORDS, { 'x-request-id': 'audit-down-ok' }, ''],
  ['audit_unavailable after a validation error', 'GET', `${RECORDS}?limt=1`, { 'x-request-id': 'audit-down-bad' }, ''],
  ['a browser asking for HTML', 'GET', `${RECORDS}?limt=1`, { accept: 'text/html' }, ''],
];

describe('the records route served directly answers as Nest serves it', () => {
  let nest: NestFastifyApplication;
  let direct: NestFastifyApplication;
  beforeAll(async () => {
    nest = await boot('nest');
    direct = await boot('direct');
  });
  afterAll(async () => {
    await nest?.close();
    await direct?.close();
  });
  beforeEach(() => {
    for (const side of ['nest', 'direct'] as const) seen[side] = { handler: [], audit: [], responses: [] };
  });

  it.each(CASES)('%s', async (name, method, path, headers, payload) => {
    const sent = { 'x-request-id': `req-${name.replace(/\W+/g, '-')}`, ...headers };

    const byNest = await send(nest, method, path, sent, payload);
    const byDirect = await send(direct, method, path, sent, payload);
    await Promise.all([responded('nest'), responded('direct')]);

    expect({ ...byDirect, ...seen.direct }).toEqual({ ...byNest, ...seen.nest });
  });

  it('has the direct app serve the route itself, so the cases above compare two servers of it', async () => {
    await send(direct, 'GET', RECORDS, { 'x-request-id': 'req-served' });
    await responded('direct');
    expect(seen.direct.responses).toEqual([
      { method: 'GET', route: '/v1/connections/:connectionId/records', url: RECORDS, status: 200 },
    ]);
    expect(seen.direct.audit).toHaveLength(1);
    expect(seen.nest.handler).toEqual([]);
  });
});
