import { describe, expect, it } from '@jest/globals';
import type { Pool, Submittable } from 'pg';

import { PreparedRows } from './prepared-rows.js';

/** A pool whose one connection is `connection`: it submits the query there and answers its refusal. */
function poolOn(connection: object): Pool {
  return {
    query: (query: Submittable) => {
      const refused = (query as unknown as { submit(c: object): Error | null }).submit(connection);
      return refused ? Promise.reject(refused) : Promise.resolve(undefined);
    },
  } as unknown as Pool;
}

const statement = {
  name: 'one',
  text: 'SELECT 1',
  values: [],
  columns: 1,
  reader: { row: () => undefined, finish: () => undefined },
};

describe('PreparedRows', () => {
  it('refuses to run, naming why, on a node-pg whose connection lacks the statement maps it reads', async () => {
    await expect(PreparedRows.run(poolOn({ submittedNamedStatements: {} }), statement)).rejects.toThrow(
      'node-pg internals changed: PreparedRows needs parsedStatements/submittedNamedStatements',
    );
    await expect(PreparedRows.run(poolOn({ parsedStatements: {} }), statement)).rejects.toThrow(
      'node-pg internals changed',
    );
  });

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
