// Where a bundled service's CPU went, by package, from a V8 CPU profile of dist/main.bundle.js.
// A bundle's frames all name one file; esbuild marks where each module starts with a
// `// <path>` line, so a frame's line number says which package it is from. Each sample is
// charged to its nearest frame in the bundle (Node internals, GC and promise hooks to the
// code that caused them), so the shares are of the process's whole busy CPU.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const starts = new Map();
  const owners = new Map();
  const ownerOf = (id) => {
    if (owners.has(id)) return owners.get(id);
    let owner = 'other';
    for (let c = id; c !== undefined; c = parent.get(c)) {
      const frame = byId.get(c).callFrame;
      if (!frame.url.endsWith('.bundle.js')) continue;
      if (frame.functionName === '__name') owner = '__name';
      else {
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
        owner = packageOf(path);
      }
      break;
    }
    owners.set(id, owner);
    return owner;
  };
  const byGroup = new Map();
  let busy = 0;
  let time = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    time += delta;
    if (!windows.some(([from, to]) => time >= from && time <= to)) return;
    if (byId.get(id).callFrame.functionName === '(idle)') return;
    busy += delta;
    const owner = ownerOf(id);
    const group = GROUPS.find(([, pattern]) => pattern.test(owner))?.[0] ?? 'other';
    byGroup.set(group, (byGroup.get(group) ?? 0) + delta);
  });
  const shares = new Map([...byGroup].map(([group, us]) => [group, us / busy]));
  return Object.assign(shares, { busyUs: busy });
}
