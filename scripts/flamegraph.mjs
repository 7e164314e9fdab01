// A CPU flame graph, as an SVG picture, from a V8 CPU profile (`node --cpu-prof`).
//
//   node scripts/flamegraph.mjs <file.cpuprofile> [--from-us N] [--to-us N] [--title T] > out.svg
//   node scripts/flamegraph.mjs <file.cpuprofile> [--from-us N] [--to-us N] --top 25   (a table instead)
//
// Only samples between --from-us and --to-us (V8's monotonic clock in microseconds, the
// clock of process.hrtime: a benchmark passes the window it measured) are drawn, idle time
// left out, so the picture shows where the busy CPU of that window went. Each box is a
// function in a call stack, its width the share of the window's busy samples spent in it
// and its callees; callers below, callees on top. No dependency: the layout is a few lines,
// and the usual tools (flamegraph.pl, 0x, speedscope) need Perl or a browser.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const WIDTH = 1200;
const ROW = 16;
const MIN_WIDTH = 0.3; // px: thinner boxes are left out (they would not be readable anyway)

/**
 * @param {{ nodes: { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }[], samples: number[], timeDeltas: number[], startTime: number }} profile
 * @param {{ fromUs?: number, toUs?: number, title?: string }} options
 * @returns {string}
 */
export function renderFlameGraph(profile, { fromUs = -Infinity, toUs = Infinity, title = 'CPU flame graph' } = {}) {
  const tree = profileTree(profile);
  const { byId, parent } = tree;
  // Weight (µs) of each sample's leaf within the window.
  const { byOwner: self } = busyTime(profile, [[fromUs, toUs]], (node) => node.id, tree);
  // A tree of frames keyed by their label path (the same function reached twice the same way merges).
  /** @typedef {{ label: string, total: number, children: Map<string, Frame> }} Frame */
  /** @type {Frame} */
  const root = { label: 'all', total: 0, children: new Map() };
  for (const [id, weight] of self) {
    const stack = [];
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const node = byId.get(cur);
      if (node && node.callFrame.functionName !== '(root)') stack.push(label(node.callFrame));
    }
    root.total += weight;
    let frame = root;
    for (const name of stack.reverse()) {
      let child = frame.children.get(name);
      if (!child) {
        child = { label: name, total: 0, children: new Map() };
        frame.children.set(name, child);
      }
      child.total += weight;
      frame = child;
    }
  }
  const boxes = [];
  let depth = 0;
  const place = (frame, x, level) => {
    const width = root.total === 0 ? 0 : (frame.total / root.total) * WIDTH;
    if (width < MIN_WIDTH) return;
    depth = Math.max(depth, level);
    boxes.push({ frame, x, width, level });
    let childX = x;
    for (const child of [...frame.children.values()].sort((a, b) => a.label.localeCompare(b.label))) {
      place(child, childX, level + 1);
      childX += (child.total / root.total) * WIDTH;
    }
  };
  place(root, 0, 0);
  const height = (depth + 1) * ROW + 40;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" font-family="monospace" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fdfdf8"/>`,
    `<text x="4" y="16" font-size="13">${escape(title)} — ${(root.total / 1000).toFixed(0)} ms busy CPU</text>`,
  ];
  for (const { frame, x, width, level } of boxes) {
    const y = height - (level + 1) * ROW - 4;
    const share = ((frame.total / root.total) * 100).toFixed(1);
    const chars = Math.floor((width - 4) / 6.6);
    const text = chars >= 3 ? (frame.label.length > chars ? `${frame.label.slice(0, chars - 1)}…` : frame.label) : '';
    out.push(
      `<g><title>${escape(`${frame.label} (${share} %)`)}</title>` +
        `<rect x="${x.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" height="${ROW - 1}" fill="${colour(frame.label)}" rx="1"/>` +
        (text ? `<text x="${(x + 2).toFixed(1)}" y="${y + ROW - 5}">${escape(text)}</text>` : '') +
        `</g>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}

/**
 * Where a window's busy CPU went, as text: the functions with the most self time (time in
 * the function itself, not its callees) and the same summed per package or source file, so
 * "25 % in pg-protocol" reads at a glance. Idle time is left out, GC and the program's
 * native work are their own rows.
 * @param {Parameters<typeof renderFlameGraph>[0]} profile
 * @param {{ fromUs?: number, toUs?: number, top?: number }} options
 * @returns {string}
 */
export function selfTimeTable(profile, { fromUs = -Infinity, toUs = Infinity, top = 25 } = {}) {
  const { byOwner: byFunction, busyUs: total } = busyTime(profile, [[fromUs, toUs]], (node) => label(node.callFrame));
  // A function's place is part of its label, so the places are the functions' sums (same order of first sight).
  const byPlace = new Map();
  for (const [name, us] of byFunction) {
    const place = /\(([^):]+)(?::\d+)?\)$/.exec(name)?.[1]?.replace(/\/[^/]*$/, '') ?? name;
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
  }
  const rows = (map) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([name, us]) =>
          `${((us / total) * 100).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`,
      );
  return [
    `${(total / 1000).toFixed(0)} ms busy CPU; self time by function:`,
    ...rows(byFunction),
    'self time by package or source folder:',
    ...rows(byPlace),
  ].join('\n');
}

/**
 * A profile's nodes by id, and each node's caller (parent) by id.
 * @param {Parameters<typeof renderFlameGraph>[0]} profile
 */
export function profileTree(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  return { byId, parent };
}

/**
 * The one walk over a profile's samples every report here is made from: the busy time (µs)
 * of the samples inside any of `windows` ([fromUs, toUs] on V8's clock, both ends in),
 * summed per owner, `owner(node)` naming what a sample's leaf node is charged to (the node
 * itself, its function, its package…). Idle samples are left out; the engine's own rows,
 * `(program)` and `(garbage collector)`, are samples like any other.
 * @template K
 * @param {Parameters<typeof renderFlameGraph>[0]} profile
 * @param {Array<[number, number]>} windows
 * @param {(node: Parameters<typeof renderFlameGraph>[0]['nodes'][number]) => K} owner
 * @param {ReturnType<typeof profileTree>} [tree] the profile's tree, when the caller built it already
 * @returns {{ byOwner: Map<K, number>, busyUs: number }} owners in the order first met
 */
export function busyTime(profile, windows, owner, tree = profileTree(profile)) {
  const byOwner = new Map();
  let busyUs = 0;
  let time = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    time += delta;
    if (!windows.some(([from, to]) => !(time < from || time > to))) return;
    const node = tree.byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') return;
    busyUs += delta;
    const key = owner(node);
    byOwner.set(key, (byOwner.get(key) ?? 0) + delta);
  });
  return { byOwner, busyUs };
}

/** `function (package or file:line)`, short enough to read in a box. */
function label(frame) {
  const name = frame.functionName || '(anonymous)';
  const url = frame.url;
  if (!url) return name;
  const pkg = /node_modules\/\.pnpm\/((?:@[^+/]+\+)?[^@/]+)@/.exec(url)?.[1]?.replace('+', '/');
  if (pkg) return `${name} (${pkg})`;
  if (url.startsWith('node:')) return `${name} (${url})`;
  const own = /\/(services|libs)\/([^/]+)\/(?:dist|src)\/(.+)$/.exec(url);
  if (own) return `${name} (${own[2]}/${own[3]}:${frame.lineNumber + 1})`;
  return `${name} (${url.split('/').slice(-1)[0]})`;
}

/** Warm colours for our code and libraries, cool for Node internals and the engine. */
function colour(text) {
  let hash = 0;
  for (let i = 0; i < text.length; i += 1) hash = (hash * 31 + text.charCodeAt(i)) | 0;
  const jitter = Math.abs(hash) % 40;
  if (/\((services|libs)\//.test(text) || /\((gateway|personal-server|messaging|crypto|service-kit)\//.test(text))
    return `hsl(${20 + (jitter % 20)}, 85%, ${55 + (jitter % 15)}%)`;
  if (/\(node:/.test(text) || /^\(/.test(text)) return `hsl(${200 + (jitter % 30)}, 50%, ${65 + (jitter % 15)}%)`;
  return `hsl(${40 + jitter}, 75%, ${60 + (jitter % 15)}%)`;
}

function escape(text) {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const [file, ...rest] = process.argv.slice(2);
  if (!file) {
    console.error(
      'usage: node scripts/flamegraph.mjs <file.cpuprofile> [--from-us N] [--to-us N] [--title T | --top N]',
    );
    process.exit(2);
  }
  const option = (name) => {
    const i = rest.indexOf(name);
    return i === -1 ? undefined : rest[i + 1];
  };
  const num = (v) => (v === undefined ? undefined : Number(v));
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const window = { fromUs: num(option('--from-us')), toUs: num(option('--to-us')) };
  const top = num(option('--top'));
  process.stdout.write(
    top === undefined
      ? renderFlameGraph(profile, { ...window, title: option('--title') })
      : `${selfTimeTable(profile, { ...window, top })}\n`,
  );
}
