import { AppError } from '@context-gateway/errors';
import { describe, expect, it } from '@jest/globals';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { lastValueFrom, of } from 'rxjs';
import { z } from 'zod';

import { Route } from '../http/route.decorator.js';
import type { AuditRecorder } from './audit-recorder.js';
import { AuditRouteInterceptor, outcomeOf } from './audit-route.interceptor.js';

describe('audit outcome of a failed request', () => {
  it('is a denial for 401/403/404 and *_denied codes, an error otherwise, always with the code', () => {
    expect(outcomeOf(new AppError('unauthenticated', 'x'))).toEqual({
      outcome: 'denied',
      errorCode: 'unauthenticated',
    });
    expect(outcomeOf(new AppError('not_found', 'x'))).toEqual({ outcome: 'denied', errorCode: 'not_found' });
    expect(outcomeOf(new AppError('policy_denied', 'x'))).toEqual({ outcome: 'denied', errorCode: 'policy_denied' });
    expect(outcomeOf(new AppError('validation_failed', 'x'))).toEqual({
      outcome: 'error',
      errorCode: 'validation_failed',
    });
    expect(outcomeOf(new Error('boom'))).toEqual({ outcome: 'error', errorCode: 'internal' });
  });
});

describe('an audited route outside HTTP', () => {
  class Handlers {
    @Route({
      method: 'POST',
      path: 'things',
      summary: 'makes a thing',
      tags: ['things'],
      auth: 'none',
      body: z.strictObject({ count: z.coerce.number().int() }),
      success: { status: 200, description: 'made' },
      errors: [],
      audit: { action: 'data_query' },
    })
    make(this: void): void {}
  }

  // Not recorded outside HTTP: the recorder is never reached on this path.
  const interceptor = new AuditRouteInterceptor(new Reflector(), undefined as unknown as AuditRecorder);
  const contextOf = (request: { body: unknown }) => {
    const host = new ExecutionContextHost([request, {}, undefined], Handlers, Handlers.prototype.make);
    host.setType('rpc');
    return host;
  };

  it('still has its input validated before the handler, as no other interceptor does it', async () => {
    const ran: unknown[] = [];
    const next = { handle: () => of(ran.push('handler')) };
    expect(() => interceptor.intercept(contextOf({ body: { count: 'many' } }), next)).toThrow(
      expect.objectContaining({ code: 'validation_failed' }),
    );
    expect(ran).toEqual([]);

    const request = { body: { count: '2' } };
    await lastValueFrom(interceptor.intercept(contextOf(request), next));
    expect(ran).toEqual(['handler']);
    expect(request.body).toEqual({ count: 2 });
  });
});
