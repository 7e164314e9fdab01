import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';

import { EnvError, parseEnv, refineRuntimeEnv, runtimeEnvShape } from './env.js';

const schema = z
  .object({ ...runtimeEnvShape({ httpPort: 8081 }), EXTRA: z.string().min(3) })
  .superRefine(refineRuntimeEnv);

describe('parseEnv', () => {
  it('applies defaults for a bare environment', () => {
    const env = parseEnv(schema, { EXTRA: 'abc' });
    expect(env).toMatchObject({
      HTTP_PORT: 8081,
      NATS_URL: 'nats://127.0.0.1:4222',
      LOG_LEVEL: 'info',
      OTEL_TRACES_EXPORTER: 'none',
    });
  });

  it('lists every problem at once and never echoes a value', () => {
    let error: EnvError | undefined;
    try {
      parseEnv(schema, { HTTP_PORT: 'eighty', DATABASE_URL: 'mysql://u:s3cret@h/db', LOG_LEVEL: 'loud' });
    } catch (e) {
      error = e as EnvError;
    }
    expect(error).toBeInstanceOf(EnvError);
    const paths = error!.problems.map((p) => p.split(':')[0]).sort();
    expect(paths).toEqual(['DATABASE_URL', 'EXTRA', 'HTTP_PORT', 'LOG_LEVEL']);
    expect(error!.message).not.toContain('s3cret');
  });

  it('reads the trusted proxies as a list, and none by default', () => {
    expect(parseEnv(schema, { EXTRA: 'abc' }).HTTP_TRUSTED_PROXIES).toBeUndefined();
    expect(
      parseEnv(schema, { EXTRA: 'abc', HTTP_TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1' }).HTTP_TRUSTED_PROXIES,
    ).toEqual(['10.0.0.0/8', '127.0.0.1']);
  });

  it('requires an OTLP endpoint when the OTLP exporter is chosen', () => {
    expect(() => parseEnv(schema, { EXTRA: 'abc', OTEL_TRACES_EXPORTER: 'otlp' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT/,
    );
  });
});
