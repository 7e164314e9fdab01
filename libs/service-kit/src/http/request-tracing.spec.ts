import { describe, expect, it } from '@jest/globals';

import { loggablePath } from './request-tracing.js';

describe('loggablePath', () => {
  it('hides path parameters named like secrets, keeps the rest and drops the query', () => {
    expect(loggablePath({ url: '/v1/connect/AbC_123-xyz?x=1', params: { token: 'AbC_123-xyz' } })).toBe(
      '/v1/connect/[redacted]',
    );
    expect(loggablePath({ url: '/v1/connections/42', params: { connectionId: '42' } })).toBe('/v1/connections/42');
    expect(loggablePath({ url: '/healthz', params: undefined })).toBe('/healthz');
  });
});
