import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';

import { ROUTE_DEFINITION, type RouteDefinition } from './route.decorator.js';
import { parseInput } from './validation.js';

/**
 * Validates a route's params, query and body against its definition before the handler
 * runs, and replaces them with the parsed values (defaults applied, types coerced), so a
 * handler only ever sees input that matches its schema. An audited route validates in its
 * audit interceptor instead (validateRouteInput), so a refusal is recorded as before, with
 * one interceptor less around every request: each one costs Nest an rxjs chain per request.
 */
@Injectable()
export class RouteValidationInterceptor implements NestInterceptor {
  constructor(private readonly reflector: Reflector) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const definition = this.reflector.get<RouteDefinition | undefined>(ROUTE_DEFINITION, context.getHandler());
    if (definition) validateRouteInput(definition, context.switchToHttp().getRequest<FastifyRequest>());
    return next.handle();
  }
}

/**
 * Parses the request's params, query and body by the route's schemas, in place; throws
 * validation_failed / unknown_field.
 */
export function validateRouteInput(definition: RouteDefinition, request: FastifyRequest): void {
  if (definition.params) request.params = parseInput(definition.params, request.params, 'params');
  if (definition.query) request.query = parseInput(definition.query, request.query, 'query');
  if (definition.body) request.body = parseInput(definition.body, request.body, 'body');
}
