import { describe, expect, it } from '@jest/globals';

import { AppError } from './app-error.js';
import { isDatabaseUnavailable } from './database-unavailable.js';

// Shapes only Prisma's generated client produces (the int test in libs/database produces
// the pg and driver-adapter ones for real): its known-request error carries the adapter's.
const prismaError = (code: string, kind: string) =>
  Object.assign(new Error(`Prisma ${code}`), {
    name: 'PrismaClientKnownRequestError',
    code,
    meta: { driverAdapterError: Object.assign(new Error(kind), { name: 'DriverAdapterError', cause: { kind } }) },
  });

describe('isDatabaseUnavailable', () => {
  it("recognizes Prisma's connection errors, by code and by the adapter error inside", () => {
    for (const code of ['P1001', 'P1017', 'P2024']) expect(isDatabaseUnavailable(prismaError(code, 'x'))).toBe(true);
    expect(isDatabaseUnavailable(prismaError('P2010', 'ConnectionClosed'))).toBe(true);
    expect(AppError.from(prismaError('P1001', 'DatabaseNotReachable')).status).toBe(503);
  });

  it('leaves query errors and outside HTTP failures alone', () => {
    expect(isDatabaseUnavailable(prismaError('P2002', 'UniqueConstraintViolation'))).toBe(false);
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', syscall: 'connect' });
    expect(isDatabaseUnavailable(new TypeError('fetch failed', { cause: refused }))).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error('x'), { code: '08' }))).toBe(false);
    expect(AppError.from(new Error('Connection terminated by a bug?')).code).toBe('internal');
  });
});
