// node scripts/nats-trace-count.mjs <trace.log> [fromISO] [toISO]
//
// Counts what crossed a nats-server, per records query: messages and bytes by connection,
// direction, verb and subject (inboxes, acks and republished copies folded to one row each),
// from the server's own protocol trace. To take one, start the bench's private nats-server
// tracing into a file (scripts/stack/infra.mjs passes NATS_SERVER_EXTRA_ARGS on), e.g.
//
//   NATS_SERVER_EXTRA_ARGS='-V -l /tmp/nats-trace.log' BENCH_SECONDS=6 pnpm bench:query
//
// and pick the window of one run from the trace's clock (UTC), e.g. the closed loop's middle.
// Queries are the gateway's publishes to a shard's query subject in the window (env QUERIES
// overrides). Tracing slows the server: batch sizes (audit group commit, PING/PONG shared per
// event-loop turn) are those of the slower run, so their shares are upper bounds.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

const [file, from, to] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/nats-trace-count.mjs <trace.log> [fromISO] [toISO]');
  process.exit(2);
}
const fromMs = from ? Date.parse(from) : 0;
const toMs = to ? Date.parse(to) : Infinity;
const MIN_PER_QUERY = Number(process.env.MIN ?? 0.005);

/** One row per kind of subject: per-request inboxes, per-message acks and the republished copies folded. */
const fold = (subject) =>
  subject
    .replace(/^_INBOX\.[^.]+(\..*)?$/, (_, rest) => `_INBOX.*${rest ? '.*' : ''}`)
    .replace(/^\$JS\.ACK\.([^.]+)\.([^.]+)\..*$/, '$JS.ACK.$1.$2.*')
    .replace(/^control\.seq\.v1\..*$/, 'control.seq.v1.>');

// [pid] 2026/12/07 17:08:31.327953 [TRC] 127.0.0.1:34742 - cid:39 - "v3.4.0:nats.js:gateway@4920" - <<- [HPUB subj reply 163 295]
const LINE = /^\[\d+\] (\S+) (\S+) \[TRC\] \S+ - cid:(\d+) - (?:"([^"]*)" - )?(<<-|->>) \[(\w+)([^\]]*)\]/;
/** Where the subject, the reply (when there is one) and the size sit, by verb and argument count. */
function parse(verb, args) {
  switch (verb) {
    case 'PUB':
      return { subject: args[0], reply: args.length === 3 ? args[1] : '', bytes: Number(args.at(-1)) };
    case 'HPUB':
      return { subject: args[0], reply: args.length === 4 ? args[1] : '', bytes: Number(args.at(-1)) };
    case 'MSG':
      return { subject: args[0], reply: args.length === 4 ? args[2] : '', bytes: Number(args.at(-1)) };
    case 'HMSG':
      return { subject: args[0], reply: args.length === 5 ? args[2] : '', bytes: Number(args.at(-1)) };
    case 'SUB':
    case 'UNSUB':
      return { subject: args[0], reply: '', bytes: 0 };
    default:
      return { subject: '', reply: '', bytes: 0 };
  }
}

const counts = new Map();
let queries = 0;
for await (const line of createInterface({ input: createReadStream(file) })) {
  const m = LINE.exec(line);
  if (!m) continue;
  const [, day, time, cid, name, direction, verb, rest] = m;
  const at = Date.parse(`${day.replaceAll('/', '-')}T${time}Z`);
  if (at < fromMs || at > toMs) continue;
  const { subject, reply, bytes } = parse(verb, rest.trim().split(/\s+/));
  // "v3.4.0:nats.js:personal-server@4903": the service (shards folded), else the connection id.
  const who = /nats\.js:([\w-]+)/.exec(name ?? '')?.[1] ?? `cid:${cid}`;
  const key = [
    who,
    direction === '<<-' ? 'in' : 'out',
    verb,
    `${fold(subject)}${reply ? ` (reply ${fold(reply)})` : ''}`,
  ].join('\t');
  const row = counts.get(key) ?? { n: 0, bytes: 0 };
  row.n += 1;
  row.bytes += bytes;
  counts.set(key, row);
  if (direction === '<<-' && who === 'gateway' && /^ps\.v1\.shard\.\d+\.query$/.test(subject)) queries += 1;
}
const perQuery = Number(process.env.QUERIES) || queries;
console.log(`queries in the window: ${queries} (per query below: / ${perQuery})`);
console.log('msgs/q\tbytes/q\tconnection\tdir\tverb\tsubject');
for (const [key, row] of [...counts].sort((a, b) => b[1].n - a[1].n)) {
  if (row.n / perQuery < MIN_PER_QUERY) continue;
  console.log(`${(row.n / perQuery).toFixed(3)}\t${Math.round(row.bytes / perQuery)}\t${key}`);
}
