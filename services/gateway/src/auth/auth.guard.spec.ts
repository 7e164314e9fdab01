import type { RpcClient } from '@context-gateway/messaging';
import { describe, expect, it } from '@jest/globals';
import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';

import type { AuditRecord, AuditRecorder } from '../audit/audit-recorder.js';
import type { Env } from '../env.js';
import { AuthFailureLimit } from '../http/rate-limits.js';
import { ROUTE_DEFINITION } from '../http/route.decorator.js';
import type { AccessTokens } from '../oauth/access-tokens.js';
import { type ApiKeyCache } from './api-key-cache.js';
import { AuthGuard } from './auth.guard.js';
import { AuthStrategies } from './auth.strategies.js';

// The guard's decisions that need no other service: the operator token and routes whose
// auth kind nobody serves. (API keys and sessions are checked with identity: test-e2e/identity.)
const TOKEN = 'operator-token-for-unit-tests-0123456789';

function contextFor(
  auth: string,
  headers: Record<string, string> = {},
): { context: ExecutionContext; request: Record<string, unknown> } {
  const handler = () => undefined;
  Reflect.defineMetadata(ROUTE_DEFINITION, { auth }, handler);
  const request: Record<string, unknown> = {
    headers,
    ip: '203.0.113.9',
    method: 'GET',
    routeOptions: { url: '/v1/x' },
  };
  const reply = { header: () => reply };
  const context = {
    getType: () => 'http',
    getHandler: () => handler,
    switchToHttp: () => ({ getRequest: () => request, getResponse: () => reply }),
  } as unknown as ExecutionContext;
  return { context, request };
}

// Never called on these paths: a request to identity would throw on `undefined`.
const noRpc = undefined as unknown as RpcClient;
const noTokens = undefined as unknown as AccessTokens;
const noKeys = undefined as unknown as ApiKeyCache;
// The failure limit without a store (0: no limit; tested against Postgres in the gateway's
// int specs), and a recorder that keeps what it is given instead of publishing it.
const noLimit = new AuthFailureLimit(0, {
  pool: { query: () => undefined },
  windowSeconds: 60,
  storeTimeoutMs: 10,
  replicas: 1,
});
const audited: AuditRecord[] = [];
const recorder = {
  record: (r: AuditRecord) => {
    audited.push(r);
    return Promise.resolve('event-id');
  },
} as unknown as AuditRecorder;
const silent = { warn: () => undefined } as never;
const guard = (env: Partial<Env>, strategies = new AuthStrategies()) =>
  new AuthGuard(new Reflector(), noRpc, noKeys, strategies, noTokens, noLimit, recorder, env as Env, silent);

describe('AuthGuard', () => {
  it('admits the operator with the exact token only', async () => {
    const g = guard({ OPERATOR_TOKEN: TOKEN });
    const ok = contextFor('operator', { authorization: `Bearer ${TOKEN}` });
    await expect(g.canActivate(ok.context)).resolves.toBe(true);
    expect(ok.request.operator).toEqual({ kind: 'operator' });
    for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, `Basic ${TOKEN}`, '']) {
      await expect(g.canActivate(contextFor('operator', { authorization }).context)).rejects.toMatchObject({
        code: 'unauthenticated',
      });
    }
  });

  it('audits a refused operator token by a fingerprint, never the token; a missing one is not audited', async () => {
    audited.length = 0;
    const g = guard({ OPERATOR_TOKEN: TOKEN });
    const wrong = `${TOKEN}-guessed`;
    await expect(
      g.canActivate(contextFor('operator', { authorization: `Bearer ${wrong}` }).context),
    ).rejects.toMatchObject({
      code: 'unauthenticated',
    });
    await expect(g.canActivate(contextFor('operator').context)).rejects.toMatchObject({ code: 'unauthenticated' });
    expect(audited).toEqual([
      {
        action: 'authentication_failed',
        outcome: 'denied',
        actorKind: 'anonymous',
        actorId: expect.stringMatching(/^sha256:[0-9a-f]{16}$/),
        resource: 'credential:operator',
        errorCode: 'unauthenticated',
        operation: 'GET /v1/x',
      },
    ]);
    expect(JSON.stringify(audited)).not.toContain(wrong);
  });

  it('turns the admin API off, with a clear error, when no operator token is configured', async () => {
    await expect(
      guard({}).canActivate(
        contextFor('operator', { authorization: 'Bearer anything-at-all-anything-at-all-123' }).context,
      ),
    ).rejects.toMatchObject({ code: 'admin_disabled', message: expect.stringContaining('OPERATOR_TOKEN') });
  });

  it('refuses a route whose auth kind no strategy serves, and uses a registered one', async () => {
    await expect(guard({}).canActivate(contextFor('auditor').context)).rejects.toMatchObject({
      code: 'unauthenticated',
    });
    const strategies = new AuthStrategies();
    strategies.register('auditor', (request) => {
      (request as unknown as Record<string, unknown>).auditor = true;
      return Promise.resolve();
    });
    const { context, request } = contextFor('auditor');
    await expect(guard({}, strategies).canActivate(context)).resolves.toBe(true);
    expect(request.auditor).toBe(true);
  });

  it('lets `none` routes through, and refuses api_key routes without a cg_sk_ bearer before asking anyone', async () => {
    await expect(guard({}).canActivate(contextFor('none').context)).resolves.toBe(true);
    await expect(
      guard({}).canActivate(contextFor('api_key', { authorization: `Bearer ${TOKEN}` }).context),
    ).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(guard({}).canActivate(contextFor('user_session').context)).rejects.toMatchObject({
      code: 'unauthenticated',
    });
  });
});
