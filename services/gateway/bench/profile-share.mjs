// Where a bundled service's CPU went, by package, from a V8 CPU profile of dist/main.bundle.js.
// A bundle's frames all name one file; esbuild marks where each module starts with a
// `// <path>` line, so a frame's line number says which package it is from. Each sample is
// charged to its nearest frame in the bundle (Node internals, GC and promise hooks to the
// code that caused them), so the shares are of the process's whole busy CPU.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { busyTime, profileTree } from '../../../scripts/flamegraph.mjs';

const MODULE_LINE = /^\/\/ ((?:\.\.\/)*(?:node_modules|libs|dist|proto)\/\S+)$/;
/** The groups a records query's CPU is reported in (docs/perf/README.md); the rest is `other`. */
const GROUPS = [
  ['Nest + rxjs', /^(@nestjs\/|rxjs$|reflect-metadata$)/],
  ['Fastify', /^(fastify$|@fastify\/|find-my-way$|fast-querystring$|avvio$)/],
  ['zod', /^zod$/],
  ['NATS + protobuf', /^(@nats-io\/|@bufbuild\/|libs\/messaging$|proto$)/],
  ['tracing', /^(@opentelemetry\/|libs\/observability$)/],
  ['esbuild __name (keepNames)', /^__name$/],
  ['gateway/audit', /^gateway\/audit$/],
  ['gateway/http + auth + records', /^gateway\/(http|auth|records)$/],
];

function moduleStarts(file) {
  const starts = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const match = MODULE_LINE.exec(line);
      if (match) starts.push([i, match[1]]);
    });
  return starts;
}

function packageOf(path) {
  const dep = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (dep) return dep[1];
  const lib = /libs\/([^/]+)/.exec(path);
  if (lib) return `libs/${lib[1]}`;
  const own = /^dist\/([^/]+)/.exec(path);
  if (own) return `gateway/${own[1].replace(/\.js$/, '')}`;
  return path.startsWith('proto') || path.includes('/proto/') ? 'proto' : path;
}

/**
 * Shares of busy CPU by group within `windows` ([fromUs, toUs] on V8's clock) of one profile.
 * @returns {Map<string, number>} group → share (0..1), with `busyUs`
 */
export function profileShares(profileFile, windows) {
  const profile = JSON.parse(readFileSync(profileFile, 'utf8'));
  const tree = profileTree(profile);
  const starts = new Map();
  /** The package of a node's nearest frame in the bundle: its own, or its nearest caller's. */
  const packageAt = (id) => {
    for (let c = id; c !== undefined; c = tree.parent.get(c)) {
      const frame = tree.byId.get(c).callFrame;
      if (!frame.url.endsWith('.bundle.js')) continue;
      if (frame.functionName === '__name') return '__name';
      if (!starts.has(frame.url)) starts.set(frame.url, moduleStarts(fileURLToPath(frame.url)));
      const list = starts.get(frame.url);
      let lo = 0;
      let hi = list.length - 1;
      let path = 'bundle';
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (list[mid][0] <= frame.lineNumber) {
          path = list[mid][1];
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return packageOf(path);
    }
    return 'other';
  };
  const groups = new Map();
  const groupOf = (node) => {
    if (!groups.has(node.id)) {
      const owner = packageAt(node.id);
      groups.set(node.id, GROUPS.find(([, pattern]) => pattern.test(owner))?.[0] ?? 'other');
    }
    return groups.get(node.id);
  };
  const { byOwner, busyUs } = busyTime(profile, windows, groupOf, tree);
  const shares = new Map([...byOwner].map(([group, us]) => [group, us / busyUs]));
  return Object.assign(shares, { busyUs });
}
