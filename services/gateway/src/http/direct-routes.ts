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
import { DiscoveryService, HttpAdapterHost, Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { defer, isObservable, lastValueFrom } from 'rxjs';

import { AuditRecorder } from '../audit/audit-recorder.js';
import { AuditRouteInterceptor } from '../audit/audit-route.interceptor.js';
import { AuthGuard } from '../auth/auth.guard.js';
import { gatewayErrorPage } from './error-pages.js';
import { DIRECT_ROUTE, ROUTE_DEFINITION, type RouteDefinition } from './route.decorator.js';
import { controllerMethods } from './route-discovery.js';

/** A handler Fastify calls directly: it reads what the guard and the input validation put on the request. */
type DirectHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * What Nest applies around every route of this app, applied here in Nest's order to the
 * routes that skip Nest's router: the app's one global guard (AuthGuard), its one global
 * interceptor (the audit interceptor, which also validates the input) and its one exception
 * filter (ProblemFilter). The app registers no pipes, middleware or other global enhancers;
 * directRoutes refuses a direct route that carries enhancers of its own.
 */
export interface DirectRoutePipeline {
  guard: CanActivate;
  interceptor: NestInterceptor;
  filter: ExceptionFilter;
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
    const url = `/${[prefix, definition.path].filter((part) => part !== '').join('/')}`;
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
 * gateway adds at boot and in onModuleInit are in place), before the server listens.
 */
@Injectable()
export class DirectRoutesInstaller implements OnApplicationBootstrap {
  constructor(
    private readonly http: HttpAdapterHost,
    private readonly discovery: DiscoveryService,
    private readonly reflector: Reflector,
    private readonly guard: AuthGuard,
    private readonly recorder: AuditRecorder,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    installDirectRoutes(this.http.httpAdapter.getInstance<FastifyInstance>(), this.discovery.getControllers(), {
      guard: this.guard,
      // The same class Nest applies to every route (AuditModule's APP_INTERCEPTOR).
      interceptor: new AuditRouteInterceptor(this.reflector, this.recorder),
      // As runService registers it for every route (service-kit bootstrap, main.ts's errorPage).
      filter: new ProblemFilter(this.logger, gatewayErrorPage),
    });
  }
}
