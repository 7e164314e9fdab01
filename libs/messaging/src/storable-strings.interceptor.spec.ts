import { describe, expect, it } from '@jest/globals';
import type { CallHandler, ExecutionContext } from '@nestjs/common';
import { of } from 'rxjs';

import { StorableStringsInterceptor } from './storable-strings.interceptor.js';

const rpcCall = (data: unknown) =>
  ({ getType: () => 'rpc', switchToRpc: () => ({ getData: () => data }) }) as unknown as ExecutionContext;
const next: CallHandler = { handle: () => of('handled') };

describe('StorableStringsInterceptor', () => {
  const interceptor = new StorableStringsInterceptor();

  it('refuses a NUL in any string of a request, nested ones included, as validation_failed', () => {
    expect(() => interceptor.intercept(rpcCall({ name: 'Acme\u0000' }), next)).toThrow(
      expect.objectContaining({
        code: 'validation_failed',
        problems: [{ path: 'name', message: 'must not contain a NUL character' }],
      }),
    );
    expect(() =>
      interceptor.intercept(rpcCall({ application: { callbackUrls: ['https://a.example', 'x\u0000'] } }), next),
    ).toThrow(expect.objectContaining({ problems: [expect.objectContaining({ path: 'application.callbackUrls.1' })] }));
  });

  it('reports every string with a NUL, each with its own path', () => {
    const records = [
      { type: 'a', externalId: '1' },
      { type: 'b\u0000', externalId: '2\u0000' },
    ];
    expect(() => interceptor.intercept(rpcCall({ userId: 'u', records }), next)).toThrow(
      expect.objectContaining({
        problems: [
          { path: 'records.1.type', message: 'must not contain a NUL character' },
          { path: 'records.1.externalId', message: 'must not contain a NUL character' },
        ],
      }),
    );
  });

  it('refuses a NUL in a key of a map, where the key is stored too', () => {
    const labels = { ok: 'a', 'bad\u0000key': 'b' };
    expect(() => interceptor.intercept(rpcCall({ userId: 'u', labels }), next)).toThrow(
      expect.objectContaining({
        code: 'validation_failed',
        problems: [{ path: 'labels.bad\u0000key', message: 'must not contain a NUL character' }],
      }),
    );
  });

  it('lets everything else through to the handler', () => {
    expect(() =>
      interceptor.intercept(rpcCall({ name: 'Acme', key: new Uint8Array([0]), count: 0n }), next),
    ).not.toThrow();
  });
});
