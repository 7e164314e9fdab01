import type { ErrorCode } from '@context-gateway/errors';
import { applyDecorators, Delete, Get, HttpCode, Patch, Post, Put, SetMetadata, UseInterceptors } from '@nestjs/common';
import type { z } from 'zod';

import type { AuditActionName } from '../audit/audit-recorder.js';
import { RouteValidationInterceptor } from './route-validation.interceptor.js';

export const ROUTE_DEFINITION = 'cg:route';
/** Marks a @DirectRoute handler: served by Fastify through direct-routes.ts, not by Nest's router. */
export const DIRECT_ROUTE = 'cg:direct-route';

/** Who may call a route; the auth guards read it, OpenAPI shows it. */
type RouteAuth = 'none' | 'api_key' | 'operator' | 'user_session' | 'auditor';

/**
 * One public route, declared once: the method and path Nest routes, the zod schemas that
 * validate its input (strict: unknown fields are rejected), and what OpenAPI publishes.
 */
export interface RouteDefinition {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Nest path relative to the controller, with `:param` segments. */
  path: string;
  summary: string;
  description?: string;
  tags: string[];
  auth: RouteAuth;
  /**
   * `api_key` routes only: the route also takes an OAuth access token acting for a person,
   * and keeps it to that person's own connections and the token's scopes
   * (src/oauth/access-tokens.ts). Other routes refuse such tokens.
   */
  personTokens?: boolean;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Success status and its body schema (omit the schema for an empty or non-JSON body). */
  success: { status: number; schema?: z.ZodType; description: string; contentType?: string };
  /** A second success status the handler may set (e.g. 202 while work goes on), with the same body schema. */
  alsoSuccess?: { status: number; description: string };
  /** Error codes this route may answer with, beyond the common ones. */
  errors: ErrorCode[];
  /**
   * Record this route in the audit trail (services/gateway/src/audit, docs/audit.md): the
   * outcome (allowed/denied/error + latency) before the response leaves; with `intent`,
   * also the intent before the handler runs.
   */
  audit?: { action: AuditActionName; capability?: string; intent?: boolean };
}

const METHOD = { GET: Get, POST: Post, PUT: Put, PATCH: Patch, DELETE: Delete } as const;

/** Declares a public route: routing, status code, input validation and OpenAPI from one definition. */
export function Route(definition: RouteDefinition): MethodDecorator {
  return applyDecorators(
    METHOD[definition.method](definition.path),
    HttpCode(definition.success.status),
    SetMetadata(ROUTE_DEFINITION, definition),
    // An audited route's input is validated by the audit interceptor, inside what it records.
    ...(definition.audit ? [] : [UseInterceptors(RouteValidationInterceptor)]),
  );
}

/**
 * Declares a public route that Fastify serves directly (direct-routes.ts), for the hottest
 * routes only: the same definition, guard, audit interceptor (with its input validation),
 * exception filter and OpenAPI entry as @Route, without Nest's per-request router
 * machinery. The handler takes `(request, reply)`: the guard has put the caller on the
 * request and the audit interceptor has replaced params, query and body with their parsed
 * values. Only for audited routes: their interceptor is where the input is validated.
 */
export function DirectRoute(
  definition: RouteDefinition & { audit: NonNullable<RouteDefinition['audit']> },
): MethodDecorator {
  return applyDecorators(SetMetadata(ROUTE_DEFINITION, definition), SetMetadata(DIRECT_ROUTE, true));
}
