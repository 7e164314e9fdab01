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

  it('refuses a NUL or a lone surrogate anywhere in the input, keys included, before the schema runs', () => {
    const problems = (value: unknown) => {
      try {
        parseInput(body, value, 'body');
        return [];
      } catch (error) {
        return (error as { code: string; problems: unknown[] }).code === 'validation_failed'
          ? (error as { problems: unknown[] }).problems
          : ['wrong code'];
      }
    };
    expect(problems({ integration: 'git\u0000hub', scopes: ['repo'] })).toEqual([
      { path: 'integration', message: 'must not contain a NUL character' },
    ]);
    expect(problems({ integration: 'github', scopes: ['ok', 'x\ud800'] })).toEqual([
      { path: 'scopes.1', message: 'must be well-formed Unicode (no lone surrogates)' },
    ]);
    expect(problems({ integration: 'github', scopes: ['repo'], '\udc00': 1 })).toEqual([
      { path: 'body', message: 'has a field name that must be well-formed Unicode (no lone surrogates)' },
    ]);
    // A surrogate pair is one character, not two lone halves.
    expect(problems({ integration: 'git😀hub', scopes: ['repo'] })).toEqual([]);
  });
});
