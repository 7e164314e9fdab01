import { AppError, ErrorCodes, isErrorCode } from '@context-gateway/errors';
import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { from, lastValueFrom, type Observable } from 'rxjs';

import { ROUTE_DEFINITION, type RouteDefinition } from '../http/route.decorator.js';
import { validateRouteInput } from '../http/route-validation.interceptor.js';
import { type AuditOutcomeName, AuditRecorder } from './audit-recorder.js';
import { auditSubject, handledFailure } from './audit-subject.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Codes that mean "the caller may not", as opposed to "something went wrong". */
const DENIAL_STATUSES = new Set([401, 403, 404]);

export function outcomeOf(error: unknown): { outcome: AuditOutcomeName; errorCode: string } {
  const appError = AppError.from(error);
  const status = isErrorCode(appError.code) ? ErrorCodes[appError.code].status : 500;
  const denied = DENIAL_STATUSES.has(status) || appError.code.endsWith('_denied');
  return { outcome: denied ? 'denied' : 'error', errorCode: appError.code };
}

/**
 * Records the outcome of every route whose @Route definition has `audit`: allowed, denied
 * or error, with the latency, BEFORE the response leaves. With `audit.intent` the intent
 * is recorded before the handler runs (so an unrecordable request never executes) and the
 * outcome after. If a record cannot be stored the request fails with audit_unavailable.
 */
@Injectable()
export class AuditRouteInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly recorder: AuditRecorder,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const definition = this.reflector.get<RouteDefinition | undefined>(ROUTE_DEFINITION, context.getHandler());
    if (!definition?.audit) return next.handle();
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    if (context.getType() !== 'http') {
      // Not recorded, but validated all the same: no RouteValidationInterceptor runs for an
      // audited route (route.decorator.ts), so this is its handler's one check of its input.
      validateRouteInput(definition, request);
      return next.handle();
    }
    return from(this.run(definition, definition.audit, request, next));
  }

  private async run(
    definition: RouteDefinition,
    audit: NonNullable<RouteDefinition['audit']>,
    request: FastifyRequest,
    next: CallHandler,
  ): Promise<unknown> {
    const startedAt = performance.now();
    const operation = `${definition.method} ${request.routeOptions?.url ?? request.url.split('?')[0]}`;
    // An org named in the path (`/organizations/:orgId/...`) is the event's org until the
    // guard or handler says otherwise — so an intent, recorded before the handler, has it too.
    const pathOrg = (request.params as Record<string, unknown> | undefined)?.orgId;
    const orgFromPath = typeof pathOrg === 'string' && UUID.test(pathOrg) ? pathOrg : undefined;
    const requestId = String(request.id);
    const base = () => ({
      action: audit.action,
      capability: audit.capability,
      orgId: orgFromPath,
      ...auditSubject(request),
      operation,
      requestId,
    });
    const intent = audit.intent ? await this.recorder.recordIntent(base()) : undefined;
    // Not async: the recorder's own promise is awaited (an async wrapper would add two more,
    // each through AsyncLocalStorage's promise hook).
    const finish = (outcome: { outcome: AuditOutcomeName; errorCode?: string }): Promise<string> => {
      const latencyMs = performance.now() - startedAt;
      if (intent) return this.recorder.recordOutcome({ ...intent, record: base() }, { ...outcome, latencyMs });
      // base() is a fresh object: the outcome goes into it rather than into a copy of it.
      return this.recorder.record(Object.assign(base(), outcome, { latencyMs }));
    };
    let body: unknown;
    try {
      // Here rather than in an interceptor of its own (route.decorator.ts): a refused input
      // is recorded like any other failure, after the intent if there is one, as it was.
      validateRouteInput(definition, request);
      body = await lastValueFrom(next.handle(), { defaultValue: undefined });
    } catch (error) {
      // The failure is recorded first; if even that fails, audit_unavailable wins.
      await finish(outcomeOf(error));
      throw error;
    }
    const handled = handledFailure(request);
    await finish(handled === undefined ? { outcome: 'allowed' } : outcomeOf(handled));
    return body;
  }
}
