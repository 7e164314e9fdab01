import 'reflect-metadata';

import { afterEach, describe, expect, it } from '@jest/globals';
import { Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

import { createLogger } from './logger.js';
import { NestLogger } from './nest-logger.js';
import { MemoryDestination } from './test-support.js';

function setup() {
  const dest = new MemoryDestination();
  const logger = createLogger({ service: 'svc-test', level: 'trace', destination: dest });
  return { dest, logger, nest: new NestLogger(logger) };
}

describe('NestLogger', () => {
  afterEach(() => Logger.overrideLogger(true));

  it('maps Nest levels onto pino labels and the context argument onto `context`', () => {
    const { dest, nest } = setup();
    nest.log('mapped route', 'RouterExplorer');
    nest.warn('slow');
    nest.debug('d', 'Ctx');
    nest.verbose('v', 'Ctx');
    nest.fatal('f', 'Ctx');
    expect(dest.lines().map(({ level, msg, context }) => ({ level, msg, context }))).toEqual([
      { level: 'info', msg: 'mapped route', context: 'RouterExplorer' },
      { level: 'warn', msg: 'slow', context: undefined },
      { level: 'debug', msg: 'd', context: 'Ctx' },
      { level: 'trace', msg: 'v', context: 'Ctx' },
      { level: 'fatal', msg: 'f', context: 'Ctx' },
    ]);
  });

  it('tells a stack from a context in error(message, stack?, context?)', () => {
    const { dest, nest } = setup();
    const stack = new Error('x').stack as string;
    nest.error('failed', stack, 'ExceptionsHandler');
    nest.error('failed again', stack);
    const [withBoth, stackOnly] = dest.lines();
    expect(withBoth).toMatchObject({ level: 'error', msg: 'failed', context: 'ExceptionsHandler', stack });
    expect(stackOnly).toMatchObject({ msg: 'failed again', stack });
    expect(stackOnly).not.toHaveProperty('context');
  });

  it('logs errors and objects as JSON fields, scrubbed', () => {
    const { dest, nest } = setup();
    nest.error(new Error('db down: postgres://app:nest-raw@db/x'), 'Bootstrap');
    nest.log({ event: 'login', password: 'nest-raw-2' }, 'Auth');
    expect(dest.raw).not.toContain('nest-raw');
    const [err, obj] = dest.lines();
    expect(err).toMatchObject({
      context: 'Bootstrap',
      err: { type: 'Error' },
      msg: 'db down: postgres://app:[redacted]@db/x',
    });
    expect(obj).toMatchObject({ context: 'Auth', event: 'login', password: '[redacted]' });
  });

  it('applies setLogLevels to its own child only', () => {
    const { dest, logger, nest } = setup();
    nest.setLogLevels(['error', 'warn']);
    nest.log('dropped');
    nest.warn('kept');
    logger.info('service logger unaffected');
    expect(dest.lines().map((l) => l.msg)).toEqual(['kept', 'service logger unaffected']);
  });

  it("receives Nest's own logs when given to NestFactory", async () => {
    const { dest, nest } = setup();
    @Module({})
    class EmptyModule {}
    const app = await NestFactory.createApplicationContext(EmptyModule, { logger: nest });
    new Logger('Custom').log('from a Nest Logger');
    await app.close();
    const lines = dest.lines();
    expect(lines).toContainEqual(
      expect.objectContaining({ context: 'NestFactory', service: 'svc-test', level: 'info' }),
    );
    expect(lines).toContainEqual(expect.objectContaining({ context: 'Custom', msg: 'from a Nest Logger' }));
  });
});
