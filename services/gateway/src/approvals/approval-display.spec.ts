import { describe, expect, it } from '@jest/globals';

import { displayArguments, escapeInvisible } from './approval-display.js';
import { callHash, canonicalJson } from './approvals.service.js';

// What the person reads before approving must be what runs: nothing hidden, nothing reordered.
describe('the approval page shows every character of the call', () => {
  it('writes direction overrides, zero-width and other invisible characters out as \\uXXXX', () => {
    // "acme/‮txt.exe" reads as "acme/exe.txt" on screen.
    const args = { repo: 'acme/\u202Etxt.exe', 'zero\u200Bwidth': 'a\uFEFFb\u2066c\u0085d', tag: 'x\u{E0041}' };
    const shown = displayArguments(canonicalJson(args));
    expect(shown).toContain('"repo": "acme/\\u202Etxt.exe"');
    expect(shown).toContain('"zero\\u200Bwidth": "a\\uFEFFb\\u2066c\\u0085d"');
    expect(shown).toContain('"tag": "x\\uDB40\\uDC41"');
    expect(shown).not.toMatch(/[\u202E\u200B\uFEFF\u2066\u0085]/u);
    // Still JSON of exactly the same values: the copy parses back to what is hashed.
    expect(JSON.parse(shown)).toEqual(args);
    expect(callHash({ method: 'tools/call', name: 'n', arguments: JSON.parse(shown) as Record<string, unknown> })).toBe(
      callHash({ method: 'tools/call', name: 'n', arguments: args }),
    );
    // Control characters JSON escapes itself stay escaped; the layout's line breaks stay.
    expect(displayArguments(canonicalJson({ a: 'x\ny\u0007' }))).toBe('{\n  "a": "x\\ny\\u0007"\n}');
    expect(escapeInvisible('github.delete\u200B_repo')).toBe('github.delete\\u200B_repo');
    expect(escapeInvisible('plain ascii and ünïcödé')).toBe('plain ascii and ünïcödé');
    // Spaces other than the plain one, combining marks, variation selectors and blank letters.
    expect(escapeInvisible('a\u2003b\u3000c d')).toBe('a\\u2003b\\u3000c d');
    expect(escapeInvisible('acme\u0336/x\uFE0F')).toBe('acme\\u0336/x\\uFE0F');
    expect(escapeInvisible('\u3164\u2800')).toBe('\\u3164\\u2800');
  });
});

describe('canonical JSON of the arguments (RFC 8785)', () => {
  it('orders keys by code unit at every depth, integer-like keys included', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null }, 10: 'x', 9: 'y', '': true })).toBe(
      '{"":true,"10":"x","9":"y","a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
    );
    const one = { repo: 'acme/x', options: { force: true, 2: 'b', 10: 'a', nested: { b: 1, a: 2 } } };
    const other = { options: { nested: { a: 2, b: 1 }, 10: 'a', force: true, 2: 'b' }, repo: 'acme/x' };
    expect(callHash({ method: 'tools/call', name: 't', arguments: one })).toBe(
      callHash({ method: 'tools/call', name: 't', arguments: other }),
    );
    // Any value differs: another hash.
    expect(callHash({ method: 'tools/call', name: 't', arguments: { ...one, repo: 'acme/y' } })).not.toBe(
      callHash({ method: 'tools/call', name: 't', arguments: one }),
    );
    // The operation and the name are part of the call: a resource read is no tool call.
    expect(callHash({ method: 'resources/read', name: 't', arguments: one })).not.toBe(
      callHash({ method: 'tools/call', name: 't', arguments: one }),
    );
  });
});
