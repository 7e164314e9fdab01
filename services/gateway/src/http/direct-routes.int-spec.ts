import type { AddressInfo } from 'node:net';

import { AppError } from '@context-gateway/errors';
import { LOGGER, ProblemFilter } from '@context-gateway/service-kit';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  Header,
  HttpCode,
  Injectable,
  Module,
  type Provider,
  Redirect,
  Req,
  Scope,
  Sse,
  UseFilters,
  UseGuards,
  UseInterceptors,
  UsePipes,
  Version,
  VersioningType,
} from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR, DiscoveryModule, NestFactory, Reflector } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import pino from 'pino';
import { of } from 'rxjs';
import { z } from 'zod';

import { type AuditRecord, AuditRecorder } from '../audit/audit-recorder.js';
import { AuditRouteInterceptor } from '../audit/audit-route.interceptor.js';
import { setAuditSubject } from '../audit/audit-subject.js';
import { AuthGuard } from '../auth/auth.guard.js';
import { DirectRoutesInstaller, installDirectRoutes } from './direct-routes.js';
import { DirectRoute, ROUTE_DEFINITION, type RouteDefinition } from './route.decorator.js';

const ID = '6f96c6d0-8f4e-4b55-9d1e-0c6bb1b0a1f2';

@Controller('v1')
class Things {
  readonly seen: unknown[] = [];

  @DirectRoute({
    method: 'GET',
    path: 'things/:thingId',
    summary: 'a thing',
    tags: ['things'],
    auth: 'api_key',
    params: z.strictObject({ thingId: z.uuid() }),
    query: z.strictObject({ limit: z.coerce.number().int().max(10).default(3), fail: z.string().optional() }),
    success: { status: 200, description: 'the thing' },
    errors: [],
    audit: { action: 'data_query' },
  })
  async get(request: FastifyRequest, reply: FastifyReply): Promise<Buffer> {
    this.seen.push({ params: request.params, query: request.query });
    setAuditSubject(request, { resource: 'thing' });
    const { fail } = request.query as { fail?: string };
    if (fail) throw new AppError('policy_denied', 'not this thing');
    await Promise.resolve();
    void reply.header('content-type', 'application/json; charset=utf-8');
    return Buffer.from('{"ok":true}');
  }
}

@Injectable()
class RequestScopedGuard implements CanActivate {
  canActivate(): boolean {
    return true;
  }
}

/** What happened, in order: the guard, each audit record, the handler, the answer leaving. */
function harness(guard: (context: ExecutionContext) => boolean, canActivate?: CanActivate['canActivate']) {
  const events: string[] = [];
  const records: AuditRecord[] = [];
  const recorder = {
    record: async (record: AuditRecord) => {
      await Promise.resolve();
      events.push(`audit:${record.outcome}`);
      records.push(record);
    },
  } as unknown as AuditRecorder;
  const fastify = Fastify();
  fastify.addHook('onSend', (_request, _reply, payload, done) => {
    events.push('answer');
    done(null, payload);
  });
  const things = new Things();
  const installed = installDirectRoutes(fastify, [{ instance: things, metatype: Things }], {
    guard: {
      canActivate:
        canActivate ??
        (async (context) => {
          events.push('guard');
          await Promise.resolve();
          return guard(context);
        }),
    },
    interceptor: new AuditRouteInterceptor(new Reflector(), recorder),
    filter: new ProblemFilter(pino({ level: 'silent' })),
  });
  return { fastify, things, events, records, installed };
}

/** A GET over a real socket: light-my-request's inject cannot load under Jest's ESM mode. */
async function get(fastify: FastifyInstance, path: string) {
  if (!fastify.server.listening) await fastify.listen({ port: 0, host: '127.0.0.1' });
  const { port } = fastify.server.address() as AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const body = await res.text();
  return {
    statusCode: res.status,
    headers: Object.fromEntries(res.headers),
    body,
    json: () => JSON.parse(body) as unknown,
  };
}

describe('a direct route', () => {
  let fastify: FastifyInstance | undefined;
  afterEach(async () => {
    await fastify?.close();
  });

  it('runs guard, input validation, handler and audit before the answer, with the route status and body', async () => {
    const h = harness((context) => {
      // Guards read the route's definition from the handler, as on a Nest route.
      const definition = new Reflector().get<RouteDefinition>(ROUTE_DEFINITION, context.getHandler());
      expect(definition.auth).toBe('api_key');
      return true;
    });
    fastify = h.fastify;
    expect(h.installed).toEqual(['GET /v1/things/:thingId']);

    const res = await get(fastify, `/v1/things/${ID}?limit=7`);

    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.body).toBe('{"ok":true}');
    // The handler saw the parsed input (a number, the default-less field absent).
    expect(h.things.seen).toEqual([{ params: { thingId: ID }, query: { limit: 7 } }]);
    expect(h.events).toEqual(['guard', 'audit:allowed', 'answer']);
    expect(h.records[0]).toMatchObject({
      action: 'data_query',
      resource: 'thing',
      operation: 'GET /v1/things/:thingId',
    });
  });

  it('answers a refused guard with problem+json, recording nothing and running no handler', async () => {
    const h = harness(() => {
      throw new AppError('unauthenticated', 'Send an API key');
    });
    fastify = h.fastify;

    const res = await get(fastify, `/v1/things/${ID}`);

    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code: 'unauthenticated', status: 401 });
    expect(h.things.seen).toEqual([]);
    expect(h.events).toEqual(['guard', 'answer']);
  });

  it('answers a guard that says no with 403, as Nest does', async () => {
    const h = harness(() => false);
    fastify = h.fastify;

    const res = await get(fastify, `/v1/things/${ID}`);

    expect(res.statusCode).toBe(403);
    expect(h.things.seen).toEqual([]);
  });

  it.each([
    [true, 200],
    [false, 403],
  ])('reads a guard that answers with an Observable of %s as Nest does (%d)', async (allowed, status) => {
    const h = harness(
      () => true,
      () => of(!allowed, allowed),
    );
    fastify = h.fastify;

    const res = await get(fastify, `/v1/things/${ID}`);

    expect(res.statusCode).toBe(status);
    expect(h.things.seen).toHaveLength(allowed ? 1 : 0);
  });

  it('refuses bad input with its code after the guard, audited, before any handler runs', async () => {
    const h = harness(() => true);
    fastify = h.fastify;

    const unknown = await get(fastify, `/v1/things/${ID}?limt=2`);
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({ code: 'unknown_field' });

    const invalid = await get(fastify, `/v1/things/${ID}?limit=11`);
    expect(invalid.statusCode).toBe(422);
    expect(invalid.json()).toMatchObject({ code: 'validation_failed' });

    expect(h.things.seen).toEqual([]);
    expect(h.events).toEqual(['guard', 'audit:error', 'answer', 'guard', 'audit:error', 'answer']);
  });

  it('records a failing handler before answering its error', async () => {
    const h = harness(() => true);
    fastify = h.fastify;

    const res = await get(fastify, `/v1/things/${ID}?fail=yes`);

    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'policy_denied' });
    expect(h.events).toEqual(['guard', 'audit:denied', 'answer']);
    expect(h.records[0]).toMatchObject({ outcome: 'denied', errorCode: 'policy_denied' });
  });

  it('matches no route for an empty path parameter, as a Nest route on Fastify does', async () => {
    const h = harness(() => true);
    fastify = h.fastify;

    const res = await get(fastify, '/v1/things/');

    expect(res.statusCode).toBe(404);
    expect(h.events).toEqual(['answer']);
  });

  const definition: Parameters<typeof DirectRoute>[0] = {
    method: 'GET',
    path: 'x',
    summary: 'x',
    tags: ['x'],
    auth: 'none',
    success: { status: 200, description: 'x' },
    errors: [],
    audit: { action: 'data_query' },
  };
  const pipeline = {
    guard: { canActivate: () => true },
    interceptor: { intercept: () => undefined as never },
    filter: { catch: () => undefined },
  };

  it.each([
    ['a guard', UseGuards({ canActivate: () => true }), /cannot have __guards__/],
    ['an interceptor', UseInterceptors({ intercept: (_c, next) => next.handle() }), /cannot have __interceptors__/],
    ['a pipe', UsePipes({ transform: (value: unknown) => value }), /cannot have __pipes__/],
    ['a filter', UseFilters({ catch: () => undefined }), /cannot have __exceptionFilters__/],
    ['@Header', Header('cache-control', 'no-store'), /cannot have __headers__/],
    ['@HttpCode', HttpCode(204), /cannot have __httpCode__/],
    ['@Redirect', Redirect('https://example.org'), /cannot have __redirect__/],
    ['@Sse', Sse('x'), /cannot have __sse__/],
    ['@Version', Version('2'), /cannot have __version__/],
  ])('refuses at boot a direct route with %s of its own', (_what, decorator: MethodDecorator, refusal) => {
    @Controller('v1')
    class Decorated {
      @DirectRoute(definition)
      @decorator
      async get(): Promise<void> {}
    }
    expect(() =>
      installDirectRoutes(Fastify(), [{ instance: new Decorated(), metatype: Decorated }], pipeline),
    ).toThrow(refusal);
  });

  it('refuses at boot a direct route under a versioned or host-bound controller', () => {
    @Controller({ path: 'v1', version: '2' })
    class Versioned {
      @DirectRoute(definition)
      async get(): Promise<void> {}
    }
    @Controller({ path: 'v1', host: 'api.example.org' })
    class HostBound {
      @DirectRoute(definition)
      async get(): Promise<void> {}
    }
    expect(() =>
      installDirectRoutes(Fastify(), [{ instance: new Versioned(), metatype: Versioned }], pipeline),
    ).toThrow(/Versioned.get: a direct route cannot have __version__/);
    expect(() =>
      installDirectRoutes(Fastify(), [{ instance: new HostBound(), metatype: HostBound }], pipeline),
    ).toThrow(/HostBound.get: a direct route cannot have host/);
  });

  it('refuses at boot a direct route with parameter decorators', () => {
    @Controller('v1')
    class WithParams {
      @DirectRoute(definition)
      async get(@Req() _request: FastifyRequest): Promise<void> {}
    }
    expect(() =>
      installDirectRoutes(Fastify(), [{ instance: new WithParams(), metatype: WithParams }], pipeline),
    ).toThrow('WithParams.get: a direct route takes (request, reply), no parameter decorators');
  });

  it('installs a direct route its controller inherits, as Nest lists inherited routes', () => {
    @Controller('v1')
    class Base {
      @DirectRoute(definition)
      async get(): Promise<void> {}
    }
    @Controller('v1')
    class Derived extends Base {}
    expect(installDirectRoutes(Fastify(), [{ instance: new Derived(), metatype: Derived }], pipeline)).toEqual([
      'GET /v1/x',
    ]);
  });
});

/** A Nest app booted as runService boots the gateway: APP_GUARD on AuthGuard, the audit interceptor, ProblemFilter. */
async function bootApp(extra: { providers?: Provider[]; configure?: (app: NestFastifyApplication) => void } = {}) {
  const lines: unknown[] = [];
  const logger = { info: (...line: unknown[]) => lines.push(line) } as unknown as pino.Logger;
  @Module({
    imports: [DiscoveryModule],
    controllers: [Things],
    providers: [
      { provide: AuditRecorder, useValue: { record: () => Promise.resolve('event') } },
      { provide: LOGGER, useValue: logger },
      { provide: AuthGuard, useValue: { canActivate: () => true } },
      { provide: APP_GUARD, useExisting: AuthGuard },
      { provide: APP_INTERCEPTOR, useClass: AuditRouteInterceptor },
      DirectRoutesInstaller,
      ...(extra.providers ?? []),
    ],
  })
  class Root {}
  const app = await NestFactory.create<NestFastifyApplication>(Root, new FastifyAdapter(), {
    logger: false,
    abortOnError: false,
  });
  app.useGlobalFilters(new ProblemFilter(pino({ level: 'silent' })));
  extra.configure?.(app);
  return { app, lines };
}

describe('the direct routes installer', () => {
  let app: NestFastifyApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('installs the routes on the app that runs exactly their pipeline, and says which', async () => {
    const booted = await bootApp();
    app = booted.app;
    await app.init();

    const fastify = app.getHttpAdapter().getInstance();
    expect(fastify.hasRoute({ method: 'GET', url: '/v1/things/:thingId' })).toBe(true);
    expect(booted.lines).toEqual([[{ routes: ['GET /v1/things/:thingId'] }, 'direct routes installed']]);
  });

  it.each<[string, Parameters<typeof bootApp>[0], RegExp]>([
    [
      'an extra global interceptor',
      {
        providers: [
          { provide: APP_INTERCEPTOR, useValue: { intercept: (_c: unknown, next: CallHandler) => next.handle() } },
        ],
      },
      /global interceptors are AuditRouteInterceptor, Object, not AuditRouteInterceptor alone/,
    ],
    [
      'a second global guard',
      { configure: (nest) => nest.useGlobalGuards({ canActivate: () => true }) },
      /global guards are Object, Object, not the app's AuthGuard alone/,
    ],
    [
      'a second global filter',
      { configure: (nest) => nest.useGlobalFilters({ catch: () => undefined }) },
      /global filters are ProblemFilter, Object, not ProblemFilter alone/,
    ],
    [
      'a global pipe',
      { configure: (nest) => nest.useGlobalPipes({ transform: (value: unknown) => value }) },
      /the app has global pipes/,
    ],
    [
      'a request-scoped global guard',
      { providers: [{ provide: APP_GUARD, useClass: RequestScopedGuard, scope: Scope.REQUEST }] },
      /the app has request-scoped global enhancers/,
    ],
    ['a global prefix', { configure: (nest) => nest.setGlobalPrefix('api') }, /the app has a global prefix \(api\)/],
    [
      'versioning',
      { configure: (nest) => nest.enableVersioning({ type: VersioningType.URI }) },
      /the app has versioning enabled/,
    ],
  ])('refuses to boot an app with %s', async (_what, extra, refusal) => {
    const booted = await bootApp(extra);
    app = booted.app;

    await expect(app.init()).rejects.toThrow(refusal);
    expect(booted.lines).toEqual([]);
  });
});
