import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SpanKind } from '@opentelemetry/api';

import { createLogger } from './logger.js';
import { runDetached, runWithRequestContext } from './request-context.js';
import { MemoryDestination } from './test-support.js';
import { initTracing, type TracingHandle, withSpan } from './tracing.js';

function setup(level?: string) {
  const dest = new MemoryDestination();
  const logger = createLogger({ service: 'svc-test', destination: dest, ...(level ? { level } : {}) });
  return { dest, logger };
}

describe('createLogger', () => {
  let tracing: TracingHandle;
  beforeAll(async () => {
    // 'none' exports nothing but must still give spans ids for correlation.
    tracing = await initTracing({ service: 'svc-test', exporter: 'none' });
  });
  afterAll(() => tracing.shutdown());

  it('writes one JSON object per line with time, level label, service and msg', () => {
    const { dest, logger } = setup();
    logger.info({ userId: 'u1' }, 'hello');
    logger.warn('second');
    const lines = dest.lines();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 'info', service: 'svc-test', msg: 'hello', userId: 'u1' });
    expect(new Date(lines[0]!.time as string).toISOString()).toBe(lines[0]!.time);
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'second' });
    expect(lines[0]).not.toHaveProperty('trace_id');
    expect(lines[0]).not.toHaveProperty('request_id');
  });

  it('honours the configured level', () => {
    const quiet = setup();
    quiet.logger.debug('hidden');
    expect(quiet.dest.raw).toBe('');
    const chatty = setup('debug');
    chatty.logger.debug('shown');
    expect(chatty.dest.last()).toMatchObject({ level: 'debug', msg: 'shown' });
    expect(() => createLogger({ service: 's', level: 'loud' })).toThrow();
  });

  it('carries trace_id and span_id of the active span', async () => {
    const { dest, logger } = setup();
    const ids = await withSpan('work', { kind: SpanKind.INTERNAL }, async (span) => {
      await Promise.resolve();
      logger.info('inside');
      return span.spanContext();
    });
    logger.info('outside');
    const [inside, outside] = dest.lines();
    expect(inside).toMatchObject({ trace_id: ids.traceId, span_id: ids.spanId });
    expect(ids.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(outside).not.toHaveProperty('trace_id');
  });

  it('carries request_id inside runWithRequestContext, across awaits', async () => {
    const { dest, logger } = setup();
    await runWithRequestContext({ requestId: 'req-42' }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      logger.info('handled');
    });
    logger.info('after');
    const [handled, after] = dest.lines();
    expect(handled).toMatchObject({ request_id: 'req-42', msg: 'handled' });
    expect(after).not.toHaveProperty('request_id');
  });

  it('carries neither request_id nor trace_id in work a request started detached, then or later', async () => {
    const { dest, logger } = setup();
    let later!: Promise<void>;
    await runWithRequestContext({ requestId: 'req-7' }, () =>
      withSpan('request', { kind: SpanKind.SERVER }, async () => {
        logger.info('request');
        runDetached(() => {
          logger.info('started');
          later = new Promise<void>((resolve) =>
            setTimeout(() => {
              logger.info('timer');
              resolve();
            }, 1),
          );
        });
        await Promise.resolve();
      }),
    );
    await later;
    const [request, started, timer] = dest.lines();
    expect(request).toMatchObject({ request_id: 'req-7', trace_id: expect.any(String) });
    for (const line of [started, timer]) {
      expect(line).not.toHaveProperty('request_id');
      expect(line).not.toHaveProperty('trace_id');
    }
  });

  describe('never writes a secret', () => {
    const SECRETS = [
      'pw-raw-value',
      'xyz-bearer-raw',
      'cg_sk_rawKey123',
      'rawKey123',
      'refresh-raw',
      'cookie-raw',
      'nested-raw',
      'cause-raw',
      'interp-raw',
      'child-raw',
      'dbpass-raw',
      'authcode-raw',
    ];

    function assertClean(raw: string) {
      expect(raw).not.toBe('');
      for (const secret of SECRETS) expect(raw).not.toContain(secret);
    }

    it('in objects, nested objects and headers', () => {
      const { dest, logger } = setup();
      logger.info(
        {
          user: { id: 'u1', password: 'pw-raw-value', profile: { settings: { apiKey: 'nested-raw' } } },
          req: { method: 'GET', headers: { authorization: 'Bearer xyz-bearer-raw', cookie: 'sid=cookie-raw' } },
          tokens: [{ refresh_token: 'refresh-raw' }],
          callback: { code: 'authcode-raw', state: 's1' },
        },
        'request in',
      );
      assertClean(dest.raw);
      // The non-secret parts are still there: redaction is surgical, not a blanket drop.
      expect(dest.last()).toMatchObject({
        user: { id: 'u1', password: '[redacted]' },
        req: { method: 'GET', headers: { authorization: '[redacted]' } },
        callback: { state: 's1' },
      });
    });

    it('in error objects, their messages, stacks and causes', () => {
      const { dest, logger } = setup();
      const cause = new Error('token endpoint rejected Bearer cause-raw');
      const err = new Error('upstream refused Bearer xyz-bearer-raw for cg_sk_rawKey123', { cause });
      Object.assign(err, { code: 'upstream_failed' });
      logger.error(err);
      logger.error({ err }, 'with message');
      logger.error({ error: err, context: 'Sync' }, 'under another key');
      assertClean(dest.raw);
      const [bare, wrapped, other] = dest.lines();
      expect(bare).toMatchObject({
        level: 'error',
        msg: 'upstream refused Bearer [redacted] for cg_sk_[redacted]',
        err: { type: 'Error', code: 'upstream_failed', cause: { message: expect.any(String) } },
      });
      expect(wrapped).toMatchObject({ msg: 'with message', err: { code: 'upstream_failed' } });
      expect(other).toMatchObject({ error: { message: expect.stringContaining('Bearer [redacted]') } });
    });

    it('in messages, interpolated values and child bindings', () => {
      const { dest, logger } = setup();
      logger.warn('retrying with Authorization: Bearer xyz-bearer-raw');
      logger.info('key %s, url %s', 'cg_sk_rawKey123', 'postgres://app:dbpass-raw@db/x');
      logger.info('obj %o', { password: 'interp-raw' });
      logger.child({ headers: { authorization: 'Bearer child-raw' }, route: '/x' }).info('child line');
      assertClean(dest.raw);
      expect(dest.lines().map((l) => l.msg)).toEqual([
        'retrying with Authorization: Bearer [redacted]',
        'key cg_sk_[redacted], url postgres://app:[redacted]@db/x',
        expect.stringContaining('[redacted]'),
        'child line',
      ]);
      expect(dest.last()).toMatchObject({ route: '/x' });
    });
  });
});
