import type { RpcClient } from '@context-gateway/messaging';
import { describe, expect, it } from '@jest/globals';
import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';

import type { Env } from '../env.js';
import { ROUTE_DEFINITION } from '../http/route.decorator.js';
import type { AccessTokens } from '../oauth/access-tokens.js';
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
  const request: Record<string, unknown> = { headers };
  const context = {
    getType: () => 'http',
    getHandler: () => handler,
    switchToHttp: () => ({ getRequest: () => request }),
  } as unknown as ExecutionContext;
  return { context, request };
}

// Never called on these paths: a request to identity would throw on `undefined`.
const noRpc = undefined as unknown as RpcClient;
const noTokens = undefined as unknown as AccessTokens;
const guard = (env: Partial<Env>, strategies = new AuthStrategies()) =>
  new AuthGuard(new Reflector(), noRpc, strategies, noTokens, env as Env);

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
