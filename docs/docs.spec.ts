// The docs state facts the code declares once (proto/src/services.ts); this keeps them true.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from '@jest/globals';

import { SERVICES } from '../proto/src/services.js';

const architecture = readFileSync(new URL('./architecture.md', import.meta.url), 'utf8');

describe('docs/architecture.md', () => {
  const rows = architecture.split('\n').filter((line) => /^\| [a-z-]+ +\| (control|data)/.test(line));

  it('has one services-table row per service, in no other number', () => {
    expect(rows.map((row) => row.split('|')[1]?.trim()).sort()).toEqual(SERVICES.map((s) => s.name).sort());
  });

  it.each(SERVICES)("gives $name's plane, port and subject prefix as the service list does", (service) => {
    const row = rows.find((r) => r.split('|')[1]?.trim() === service.name) ?? '';
    const [, , plane, port, prefix] = row.split('|').map((cell) => cell.trim());
    expect(plane?.startsWith(service.plane)).toBe(true);
    expect(port?.startsWith(String(service.httpPort))).toBe(true);
    expect(prefix).toBe(`\`${service.subjectPrefix}\``);
  });
});
