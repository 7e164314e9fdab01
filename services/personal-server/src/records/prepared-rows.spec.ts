import { describe, expect, it } from '@jest/globals';
import type { Pool } from 'pg';

import { PreparedRows } from './prepared-rows.js';

const statement = {
  name: 'one',
  text: 'SELECT 1',
  values: [],
  columns: 1,
  reader: { row: () => undefined, finish: () => undefined },
};

describe('PreparedRows', () => {
  it('gives an error made on a socket event a stack that leads back to its caller', async () => {
    const fromSocket = (): Error => new Error('made where no caller is on the stack');
    const socket = {
      query: () => new Promise((_, reject) => setImmediate(() => reject(fromSocket()))),
    } as unknown as Pool;
    const error = (await PreparedRows.run(socket, statement).catch((e: unknown) => e)) as Error;
    expect(error.message).toBe('made where no caller is on the stack');
    // The awaiting caller (this spec), not the event that made it.
    expect(error.stack).not.toContain('fromSocket');
    expect(error.stack).toContain('prepared-rows.spec');
  });
});
