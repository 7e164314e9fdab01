// Socket writes and CPU per turn when a freshness check (ControlHead's PING) and an audit
// append (AuditGroupCommit) fall due in the same turn of the event loop, as in the open loop
// where one request's audit event and another's key check meet (docs/perf/README.md, "The
// gateway's turn end"):
//   node services/gateway/bench/turn-end-writes.bench.mjs                  (after `pnpm build`)
//   BENCH_GATEWAY_DIST=<another checkout>/services/gateway/dist node …     (that checkout's code)
//
// A private nats-server with the CONTROL and AUDIT streams; one connection carries both, as in
// the gateway. Each round is one turn: a timer callback asks the head and appends one event,
// in the order of the round (check first, or audit first, alternating), then both are awaited.
// Prints the process's write system calls (/proc/self/io syscw) and CPU (process.cpuUsage) per
// round, for each order: counts the neighbours on the machine cannot inflate.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { connectNats, ensureStreams, JetStreamPublisher } from '@context-gateway/messaging';
import { startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import { ActorKind, AuditAction, AuditEventSchema, AuditOutcome, AuditPhase, streams } from '@context-gateway/proto';

const dist = resolve(process.env.BENCH_GATEWAY_DIST ?? new URL('../dist', import.meta.url).pathname);
const rounds = Number(process.env.BENCH_ROUNDS ?? 2000);
const { ControlHead } = await import(pathToFileURL(`${dist}/policy/control-head.js`).href);
const { AuditGroupCommit } = await import(pathToFileURL(`${dist}/audit/audit-group-commit.js`).href);

const logger = createLogger({ service: 'turn-end-bench', level: 'silent' });
const nats = await startPrivateNats();
const admin = await connectNats({ url: nats.url, name: 'bench-admin', logger, bootTimeoutMs: 5_000 });
await ensureStreams(admin, [streams.control, streams.audit], logger);
await admin.close();
const nc = await connectNats({ url: nats.url, name: 'bench-gateway', logger, bootTimeoutMs: 5_000 });
const head = new ControlHead(nc);
const commits = new AuditGroupCommit(new JetStreamPublisher(nc), 5_000);

const event = () =>
  create(AuditEventSchema, {
    eventId: randomUUID(),
    occurredAt: timestampFromDate(new Date()),
    action: AuditAction.DATA_QUERY,
    outcome: AuditOutcome.ALLOWED,
    phase: AuditPhase.COMPLETE,
    actorKind: ActorKind.API_KEY,
  });
const writes = () => Number(/syscw: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))[1]);
const turn = (checkFirst) =>
  new Promise((done, fail) =>
    setTimeout(() => {
      const both = checkFirst
        ? [head.latestSeq(), commits.append(event())]
        : [commits.append(event()), head.latestSeq()];
      Promise.all(both).then(done, fail);
    }, 0),
  );

// Warm up (the first check asks STREAM.INFO, which proves the push complete from then on).
for (let i = 0; i < 200; i += 1) await turn(i % 2 === 0);
const figures = { checkFirst: { writes: 0, cpuUs: 0 }, auditFirst: { writes: 0, cpuUs: 0 } };
for (let i = 0; i < rounds; i += 1) {
  const checkFirst = i % 2 === 0;
  const w = writes();
  const cpu = process.cpuUsage();
  await turn(checkFirst);
  const used = process.cpuUsage(cpu);
  const into = figures[checkFirst ? 'checkFirst' : 'auditFirst'];
  into.writes += writes() - w;
  into.cpuUs += used.user + used.system;
}
const per = (n) => (n / (rounds / 2)).toFixed(3);
console.log(
  JSON.stringify({
    dist,
    rounds,
    load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    stats: head.stats,
    'writes/turn': { checkFirst: per(figures.checkFirst.writes), auditFirst: per(figures.auditFirst.writes) },
    'cpu µs/turn': { checkFirst: per(figures.checkFirst.cpuUs), auditFirst: per(figures.auditFirst.cpuUs) },
  }),
);
await nc.close();
await nats.stop();
