import { SERVICE_ENV, SERVICE_INFO, type ServiceInfo } from '@context-gateway/service-kit';
import { Controller, Get, Inject } from '@nestjs/common';
import { DiscoveryService, Reflector } from '@nestjs/core';

import type { Env } from '../env.js';
import { ROUTE_DEFINITION, type RouteDefinition } from '../http/route.decorator.js';
import { controllerMethods } from '../http/route-discovery.js';
import { buildOpenApi, type DiscoveredRoute } from './openapi.builder.js';

@Controller('v1')
export class OpenApiController {
  private document: unknown;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly reflector: Reflector,
    @Inject(SERVICE_INFO) private readonly info: ServiceInfo,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {}

  /** The OpenAPI 3.1 description of every route declared with @Route. */
  @Get('openapi.json')
  get(): unknown {
    this.document ??= buildOpenApi(this.discover(), {
      version: this.info.version,
      serverUrl: this.env.GATEWAY_PUBLIC_URL,
    });
    return this.document;
  }

  private discover(): DiscoveredRoute[] {
    const routes: DiscoveredRoute[] = [];
    for (const { prefix, handler } of controllerMethods(this.discovery.getControllers())) {
      const definition = this.reflector.get<RouteDefinition | undefined>(ROUTE_DEFINITION, handler);
      if (definition) routes.push({ prefix, definition });
    }
    return routes.sort((a, b) => `${a.prefix}/${a.definition.path}`.localeCompare(`${b.prefix}/${b.definition.path}`));
  }
}
