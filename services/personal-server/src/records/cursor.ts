import { AppError } from '@context-gateway/errors';

/**
 * Cursors are positions in a connection's change order (`records.version`), opaque to
 * apps. Versions are handed out under the connection's row lock, so they grow in commit
 * order: a page boundary can never be overtaken by a concurrent sync (a record written
 * meanwhile gets a higher version and shows up on a later page; an updated record moves
 * to the end). Timestamps cannot promise that: two transactions commit in either order.
 */
export function encodeCursor(version: bigint): string {
  return Buffer.from(`v1:${version}`).toString('base64url');
}

export function decodeCursor(cursor: string): bigint {
  if (cursor === '') return 0n;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const version = /^v1:(\d{1,19})$/.exec(text)?.[1];
  if (version === undefined)
    throw new AppError('validation_failed', 'The cursor is not one this API issued', [
      { path: 'cursor', message: 'invalid cursor' },
    ]);
  return BigInt(version);
}
