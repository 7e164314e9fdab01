import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as esbuild from 'esbuild';

import { stripRedundantNames } from './strip-names.mjs';

// Two modules with clashing names (scope hoisting renames one Config to Config2), inner
// function declarations, arrows, anonymous and named function and class expressions, object
// properties, a class with its own static `name`, a function reassigned after its declaration
// and a default export: every name must come out as the keepNames build gives it.
const FIXTURE = {
  'a.js': `
    export class Config { static seen = this.name; }
    export function outer() {
      function g() {}
      const f = (y) => y;
      const h = function () {};
      const k = function named() {};
      const C = class { static seen = this.name; };
      const o = { p: () => 1, 'q r': function () {}, ['c' + 'd']: () => 2, m() {} };
      let r = function swap() {};
      function reassigned() {}
      reassigned = () => 3;
      return { g, f, h, k, C, o, r, reassigned, seen: C.seen };
    }
    export const later = () => outer;
    export default () => 1;
  `,
  'b.js': `
    import def, { Config as A, outer, later } from './a.js';
    class Config { static seen = this.name; }
    class S { static name() { return 'custom'; } }
    const key = 'name';
    class T { static [key]() {} }
    var U = class Named {};
    const hot = () => { const inner = () => 0; function decl() {} return [inner, decl]; };
    export const all = () => ({ A, Config, outer: outer(), later, def, S, T, U, hot: hot(), aSeen: A.seen, bSeen: Config.seen });
  `,
};

/** Every function's name and every string it holds, by path, for comparison. */
function namesOf(value: unknown, path = '', out: Record<string, unknown> = {}, seen = new Set<unknown>()) {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
    out[path] = value;
    return out;
  }
  if (seen.has(value)) return out;
  seen.add(value);
  if (typeof value === 'function') {
    const name: unknown = value.name;
    // A class's own static name() is a method: compare what it is called.
    out[`${path}.name`] = typeof name === 'function' ? `method ${name.name}` : name;
  }
  for (const key of Object.keys(value)) namesOf((value as Record<string, unknown>)[key], `${path}.${key}`, out, seen);
  return out;
}

describe('stripRedundantNames', () => {
  let dir: string;
  let bundled: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'strip-names-'));
    for (const [file, text] of Object.entries(FIXTURE)) writeFileSync(join(dir, file), text);
    const result = await esbuild.build({
      entryPoints: [join(dir, 'b.js')],
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      keepNames: true,
      write: false,
      logLevel: 'silent',
    });
    bundled = result.outputFiles.map((file) => file.text).join('');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function run(code: string, file: string) {
    writeFileSync(join(dir, file), code);
    const module = (await import(pathToFileURL(join(dir, file)).href)) as { all: () => unknown };
    return namesOf(module.all());
  }

  it('gives every function and class the name the keepNames build gives it', async () => {
    const stripped = stripRedundantNames(bundled);
    const before = await run(bundled, 'keep.mjs');
    const after = await run(stripped.code, 'strip.mjs');
    expect(after).toEqual(before);
    // The fixture is what it claims: a renamed class, a custom static name, inferred names.
    expect(bundled).toContain('__name(this, "Config")');
    expect(before).toMatchObject({
      '.Config.name': 'Config',
      '.A.name': 'Config',
      '.bSeen': 'Config',
      '.S.name': 'method name',
      '.outer.f.name': 'f',
      '.outer.o.q r.name': 'q r',
      '.outer.reassigned.name': 'reassigned',
      '.def.name': 'default',
      '.U.name': 'Named',
    });
  });

  it('removes the wrappers the engine makes redundant and keeps the rest', () => {
    const stripped = stripRedundantNames(bundled);
    const left = stripped.code.match(/__name\([^,]+, "[^"]*"\)/g) ?? [];
    expect(stripped.removed).toBeGreaterThan(10);
    expect(left).toHaveLength(stripped.kept);
    // Renamed by scope hoisting, a default export, a reassigned binding, a name set by hand.
    expect(left).toEqual(expect.arrayContaining(['__name(this, "Config")', '__name(reassigned, "reassigned")']));
    expect(stripped.code).toMatch(/__name\(\(\) => 1, "default"\)/);
    expect(stripped.code).not.toMatch(/__name\((g|f|h|decl|inner|outer), "\1"\)/);
  });

  it('keeps every line and column, so the source map stays exact', () => {
    const stripped = stripRedundantNames(bundled);
    expect(stripped.code).toHaveLength(bundled.length);
    expect(stripped.code.split('\n').map((line) => line.length)).toEqual(bundled.split('\n').map((l) => l.length));
  });

  it('leaves code alone when __name is not esbuild helper', () => {
    const code = 'const __name = (f) => f;\nconst f = __name(() => 1, "f");\n';
    expect(stripRedundantNames(code)).toEqual({ code, removed: 0, kept: 0 });
  });
});
