import { LOGGER, ProblemFilter } from '@context-gateway/service-kit';
import type { CanActivate, ExceptionFilter, NestInterceptor, Type } from '@nestjs/common';
import { ForbiddenException, Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import {
  EXCEPTION_FILTERS_METADATA,
  GUARDS_METADATA,
  HEADERS_METADATA,
  HOST_METADATA,
  HTTP_CODE_METADATA,
  INTERCEPTORS_METADATA,
  PIPES_METADATA,
  REDIRECT_METADATA,
  RENDER_METADATA,
  ROUTE_ARGS_METADATA,
  SSE_METADATA,
  VERSION_METADATA,
} from '@nestjs/common/constants.js';
import { ApplicationConfig, DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { defer, isObservable, lastValueFrom } from 'rxjs';

import { AuditRouteInterceptor } from '../audit/audit-route.interceptor.js';
import { AuthGuard } from '../auth/auth.guard.js';
import { DIRECT_ROUTE, ROUTE_DEFINITION, type RouteDefinition } from './route.decorator.js';
import { controllerMethods } from './route-discovery.js';

/** A handler Fastify calls directly: it reads what the guard and the input validation put on the request. */
type DirectHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * What Nest applies around every route of this app, applied here in Nest's order to the
 * routes that skip Nest's router: the app's one global guard (AuthGuard), its one global
 * interceptor (the audit interceptor, which also validates the input) and its one exception
 * filter (ProblemFilter). At boot, directPipeline takes them from Nest's own global
 * configuration and refuses to start if that holds anything else (pipes, another enhancer,
 * request-scoped ones, a global prefix, versioning); installDirectRoutes refuses a direct
 * route that carries enhancers of its own.
 */
export interface DirectRoutePipeline {
  guard: CanActivate;
  interceptor: NestInterceptor;
  filter: ExceptionFilter;
}

const classNames = (enhancers: readonly object[]) =>
  enhancers.length === 0 ? 'none' : enhancers.map((enhancer) => enhancer.constructor.name).join(', ');

/**
 * The app's global pipeline, as Nest runs it on every other route: its global guards,
 * interceptors, filters and pipes (useGlobal* and APP_* providers both land in
 * ApplicationConfig by the time the app bootstraps). Throws, so the app does not start,
 * unless that is exactly `authGuard` (the APP_GUARD, useExisting), one AuditRouteInterceptor
 * and one ProblemFilter, with nothing request-scoped, no pre-request hooks, no global prefix
 * and no versioning: a direct route would silently skip anything more.
 */
function directPipeline(config: ApplicationConfig, authGuard: CanActivate): DirectRoutePipeline {
  const refuse = (what: string) =>
    new Error(
      `direct routes: ${what}; a direct route runs only AuthGuard, AuditRouteInterceptor and ProblemFilter ` +
        '(src/http/direct-routes.ts): extend its pipeline first',
    );
  const guards = config.getGlobalGuards();
  if (guards.length !== 1 || guards[0] !== authGuard)
    throw refuse(`the global guards are ${classNames(guards)}, not the app's AuthGuard alone`);
  const interceptors = config.getGlobalInterceptors();
  const [interceptor] = interceptors;
  if (interceptors.length !== 1 || !(interceptor instanceof AuditRouteInterceptor))
    throw refuse(`the global interceptors are ${classNames(interceptors)}, not AuditRouteInterceptor alone`);
  const filters = config.getGlobalFilters();
  const [filter] = filters;
  if (filters.length !== 1 || !(filter instanceof ProblemFilter))
    throw refuse(`the global filters are ${classNames(filters)}, not ProblemFilter alone`);
  if (config.getGlobalPipes().length > 0)
    throw refuse(`the app has global pipes (${classNames(config.getGlobalPipes())})`);
  const requestScoped = [
    ...config.getGlobalRequestGuards(),
    ...config.getGlobalRequestInterceptors(),
    ...config.getGlobalRequestFilters(),
    ...config.getGlobalRequestPipes(),
  ];
  if (requestScoped.length > 0)
    throw refuse(
      `the app has request-scoped global enhancers (${requestScoped.map(({ name }) => String(name)).join(', ')})`,
    );
  if (config.getGlobalPreRequestHooks().length > 0) throw refuse('the app has global pre-request hooks');
  if (config.getGlobalPrefix() !== '') throw refuse(`the app has a global prefix (${config.getGlobalPrefix()})`);
  if (config.getVersioning() !== undefined) throw refuse('the app has versioning enabled');
  return { guard: authGuard, interceptor, filter };
}

/**
 * Nest's metadata for what a route or its controller can add to Nest's pipeline: scoped
 * enhancers, and what Nest's router applies (@Header, @HttpCode, @Redirect, @Sse, @Render,
 * @Version, a controller's host). A direct route has none (nothing here would apply them;
 * its status is its definition's), so one that gains any is refused at boot.
 */
const NEST_ONLY_METADATA = [
  GUARDS_METADATA,
  INTERCEPTORS_METADATA,
  PIPES_METADATA,
  EXCEPTION_FILTERS_METADATA,
  HEADERS_METADATA,
  HTTP_CODE_METADATA,
  REDIRECT_METADATA,
  SSE_METADATA,
  RENDER_METADATA,
  VERSION_METADATA,
  HOST_METADATA,
];

/**
 * Registers the @DirectRoute handlers of `controllers` on Fastify, with the same pipeline
 * Nest's router gives a route: guard → status → interceptor (audit + input validation) →
 * handler → reply, any error to the exception filter. The answers are the same, byte for
 * byte; what goes is Nest's per-request machinery (execution-context chains, an rxjs
 * pipeline of defer/mergeAll with an AsyncResource per interceptor, the response
 * controller's checks): 6–7 % of the gateway's CPU per records query, as measured by
 * profile shares (docs/perf/README.md). OpenAPI still lists the route: it reads
 * ROUTE_DEFINITION, which a direct route carries like any other.
 */
export function installDirectRoutes(
  fastify: FastifyInstance,
  controllers: readonly { instance: unknown; metatype: unknown }[],
  pipeline: DirectRoutePipeline,
): string[] {
  const installed: string[] = [];
  for (const { instance, metatype, prefix, name, handler } of controllerMethods(controllers)) {
    if (Reflect.getMetadata(DIRECT_ROUTE, handler) !== true) continue;
    const definition = Reflect.getMetadata(ROUTE_DEFINITION, handler) as RouteDefinition | undefined;
    if (!definition) throw new Error(`${metatype.name}.${name}: a direct route needs its @Route definition`);
    for (const key of NEST_ONLY_METADATA) {
      if (Reflect.getMetadata(key, handler) !== undefined || Reflect.getMetadata(key, metatype) !== undefined)
        throw new Error(
          `${metatype.name}.${name}: a direct route cannot have ${key} (only the app's own pipeline runs)`,
        );
    }
    if (Reflect.getMetadata(ROUTE_ARGS_METADATA, metatype, name) !== undefined)
      throw new Error(`${metatype.name}.${name}: a direct route takes (request, reply), no parameter decorators`);
    const url = routeUrl(prefix, definition.path);
    const direct = handler as unknown as DirectHandler;
    fastify.route({
      method: definition.method,
      url,
      handler: directHandler(definition, metatype, direct, direct.bind(instance), pipeline),
    });
    installed.push(`${definition.method} ${url}`);
  }
  return installed;
}

/** A route's URL on Fastify, as Nest joins a controller's path and a method's. */
const routeUrl = (prefix: string, path: string) => `/${[prefix, path].filter((part) => part !== '').join('/')}`;

function directHandler(
  definition: RouteDefinition,
  metatype: Type<unknown>,
  handler: DirectHandler,
  run: DirectHandler,
  { guard, interceptor, filter }: DirectRoutePipeline,
) {
  const status = definition.success.status;
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    // As Nest's Fastify adapter does for every route with parameters: an empty one
    // (`/v1/connections//records`) matches no route (404), as it would not on Express.
    const params = request.params as Record<string, string>;
    for (const name in params) {
      if (params[name] === '' && name !== '*') {
        reply.callNotFound();
        return reply;
      }
    }
    // What guards, interceptors and filters are handed, with getHandler() naming the
    // controller method, so they read the same @Route definition as on a Nest route.
    const context = new ExecutionContextHost([request, reply, undefined], metatype, handler);
    context.setType('http');
    try {
      if (!(await guardAllows(guard, context))) throw new ForbiddenException('Forbidden resource');
      void reply.status(status);
      const answer = await interceptor.intercept(context, { handle: () => defer(() => run(request, reply)) });
      const body: unknown = await lastValueFrom(answer, { defaultValue: undefined });
      return reply.sent ? reply : reply.send(body);
    } catch (error) {
      filter.catch(error, context);
      return reply;
    }
  };
}

/** A guard's answer, as Nest's GuardsConsumer reads it: an Observable's last value, else the (awaited) value. */
function guardAllows(guard: CanActivate, context: ExecutionContextHost): boolean | Promise<boolean> {
  const allowed = guard.canActivate(context);
  return isObservable(allowed) ? lastValueFrom(allowed) : allowed;
}

/**
 * Installs the app's direct routes once every module is initialised (the Fastify hooks the
 * gateway adds at boot and in onModuleInit are in place, the global filter registered),
 * before the server listens.
 */
@Injectable()
export class DirectRoutesInstaller implements OnApplicationBootstrap {
  constructor(
    private readonly http: HttpAdapterHost,
    private readonly discovery: DiscoveryService,
    private readonly config: ApplicationConfig,
    private readonly guard: AuthGuard,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    const fastify = this.http.httpAdapter.getInstance<FastifyInstance>();
    const controllers = this.discovery.getControllers();
    const routes = installDirectRoutes(fastify, controllers, directPipeline(this.config, this.guard));
    // Fastify must now hold every @DirectRoute the controllers declare: one that is not
    // there would still be in OpenAPI (which reads the same definitions) and answer 404.
    for (const { handler, prefix } of controllerMethods(controllers)) {
      if (Reflect.getMetadata(DIRECT_ROUTE, handler) !== true) continue;
      const { method, path } = Reflect.getMetadata(ROUTE_DEFINITION, handler) as RouteDefinition;
      const url = routeUrl(prefix, path);
      if (!fastify.hasRoute({ method, url })) throw new Error(`direct routes: ${method} ${url} is not installed`);
    }
    this.logger.info({ routes }, 'direct routes installed');
  }
}
