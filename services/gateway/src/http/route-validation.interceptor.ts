import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';

import { ROUTE_DEFINITION, type RouteDefinition } from './route.decorator.js';
import { parseInput } from './validation.js';

/**
 * Validates a route's params, query and body against its definition before the handler
 * runs, and replaces them with the parsed values (defaults applied, types coerced), so a
 * handler only ever sees input that matches its schema.
 */
@Injectable()
export class RouteValidationInterceptor implements NestInterceptor {
  constructor(private readonly reflector: Reflector) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const definition = this.reflector.get<RouteDefinition | undefined>(ROUTE_DEFINITION, context.getHandler());
    if (definition) {
      const request = context.switchToHttp().getRequest<FastifyRequest>();
      if (definition.params) request.params = parseInput(definition.params, request.params, 'params');
      if (definition.query) request.query = parseInput(definition.query, request.query, 'query');
      if (definition.body) request.body = parseInput(definition.body, request.body, 'body');
    }
    return next.handle();
  }
}
