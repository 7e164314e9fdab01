import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from '@jest/globals';

// Runs the real buf binary against copies of our contracts: the gate in scripts/check.mjs
// is only worth something if a breaking edit actually fails it.
const protoDir = fileURLToPath(new URL('..', import.meta.url));
const buf = join(protoDir, 'node_modules/.bin/buf');
const scratch = mkdtempSync(join(tmpdir(), 'cg-proto-break-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function copyContracts(name: string): string {
  const dir = join(scratch, name);
  cpSync(join(protoDir, 'contextgateway'), join(dir, 'contextgateway'), { recursive: true });
  cpSync(join(protoDir, 'buf.yaml'), join(dir, 'buf.yaml'));
  return dir;
}

function breaking(changed: string): { ok: boolean; output: string } {
  const r = spawnSync(buf, ['breaking', changed, '--against', protoDir], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

describe('proto contracts', () => {
  it('accept an additive change (a new field)', () => {
    const dir = copyContracts('additive');
    const file = join(dir, 'contextgateway/health/v1/health.proto');
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('string instance = 6;', 'string instance = 6;\n  string region = 7;'),
    );
    expect(breaking(dir)).toEqual({ ok: true, output: '' });
  });

  it('reject a changed field type', () => {
    const dir = copyContracts('retyped');
    const file = join(dir, 'contextgateway/health/v1/health.proto');
    writeFileSync(file, readFileSync(file, 'utf8').replace('bool ready = 2;', 'string ready = 2;'));
    const result = breaking(dir);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/ready/);
  });

  it('reject a removed field', () => {
    const dir = copyContracts('removed');
    const file = join(dir, 'contextgateway/common/v1/error.proto');
    writeFileSync(file, readFileSync(file, 'utf8').replace('  string message = 2;\n', ''));
    const result = breaking(dir);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/ErrorReply/);
  });
});
