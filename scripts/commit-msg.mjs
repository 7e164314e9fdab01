#!/usr/bin/env node
// @ts-check
// The commit-msg hook (docs/contributing.md): a subject line under 72 characters, then a
// blank line before any body. The body says why; the subject says what, in brief.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: commit-msg.mjs <message file>');
  process.exit(2);
}
const lines = readFileSync(file, 'utf8')
  .split('\n')
  .filter((line) => !line.startsWith('#'));
const subject = lines[0] ?? '';
const problems = [];
if (subject.trim() === '') problems.push('the subject line is empty');
if (subject.length >= 72)
  problems.push(`the subject is ${subject.length} characters; keep it under 72 (the body says the rest)`);
if (lines.length > 1 && (lines[1] ?? '').trim() !== '')
  problems.push('leave a blank line between the subject and the body');
// Merges and fixups written by git itself are left alone.
if (problems.length > 0 && !/^(Merge|Revert|fixup!|squash!) /.test(subject)) {
  console.error(`commit message: ${problems.join('; ')}`);
  process.exit(1);
}
