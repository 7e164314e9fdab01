import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';

import { parseInput } from './validation.js';

const body = z.strictObject({
  integration: z.string().min(1),
  scopes: z.array(z.string()).min(1),
  state: z.string().optional(),
});

describe('parseInput', () => {
  it('returns the parsed value', () => {
    expect(parseInput(body, { integration: 'github', scopes: ['repo'] }, 'body')).toEqual({
      integration: 'github',
      scopes: ['repo'],
    });
  });

  it('rejects unknown fields with unknown_field and names them', () => {
    expect(() => parseInput(body, { integration: 'github', scopes: ['repo'], scope: 'typo' }, 'body')).toThrow(
      expect.objectContaining({
        code: 'unknown_field',
        problems: [{ path: 'scope', message: 'is not a known field' }],
      }),
    );
  });

  it('reports every other problem as validation_failed with its path', () => {
    expect(() => parseInput(body, { integration: '', scopes: [] }, 'body')).toThrow(
      expect.objectContaining({
        code: 'validation_failed',
        problems: [expect.objectContaining({ path: 'integration' }), expect.objectContaining({ path: 'scopes' })],
      }),
    );
    expect(() => parseInput(body, undefined, 'body')).toThrow(expect.objectContaining({ code: 'validation_failed' }));
  });
});
