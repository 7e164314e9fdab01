// One socket write more per turn, measured alone (docs/perf/README.md, "The gateway's turn end"):
//   TURNS=20000 node services/gateway/bench/write-cost.bench.mjs
// What one socket write more per turn costs (client + nats-server CPU): each turn sends a
// PUB and a PING and waits for the PONG, either in one write ("merged") or two ("split").
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';

const port = 14000 + Math.floor(Math.random() * 1000);
const server = spawn('/usr/sbin/nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 500));
const sock = connect(port, '127.0.0.1');
sock.setNoDelay(true);
let waiter;
let buf = '';
sock.on('data', (d) => {
  buf += d.toString();
  if (buf.includes('PONG\r\n')) {
    buf = '';
    const w = waiter;
    waiter = undefined;
    w?.();
  }
});
await new Promise((r) => sock.once('data', r));
sock.write('CONNECT {"verbose":false,"pedantic":false}\r\n');
const pub = 'PUB bench.audit 64\r\n' + 'x'.repeat(64) + '\r\n';
const runNs = (pid) =>
  readdirSync(`/proc/${pid}/task`).reduce(
    (n, t) => n + Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]),
    0,
  );
const writes = () => Number(/syscw: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))[1]);
const turn = (split) =>
  new Promise((done) => {
    waiter = done;
    if (split) {
      sock.write(pub);
      sock.write('PING\r\n');
    } else sock.write(pub + 'PING\r\n');
  });
const turns = Number(process.env.TURNS ?? 20000);
for (let i = 0; i < 2000; i++) await turn(i % 2 === 0);
const res = {};
for (const round of [1, 2, 3, 4, 5])
  for (const split of round % 2 ? [false, true] : [true, false]) {
    const name = split ? 'split' : 'merged';
    const w = writes(),
      me = runNs('self'),
      srv = runNs(server.pid);
    for (let i = 0; i < turns; i++) await turn(split);
    const r = {
      writes: (writes() - w) / turns,
      client: (runNs('self') - me) / turns / 1000,
      nats: (runNs(server.pid) - srv) / turns / 1000,
    };
    (res[name] ??= []).push(r);
  }
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
for (const [name, rs] of Object.entries(res))
  console.log(
    name,
    rs.map((r) => `w ${r.writes.toFixed(2)} client ${r.client.toFixed(1)} nats ${r.nats.toFixed(1)}`).join(' | '),
  );
const diffs = res.split
  .map((s, i) => s.client + s.nats - res.merged[i].client - res.merged[i].nats)
  .sort((a, b) => a - b);
console.log('split-merged µs/turn (client+nats), sorted:', diffs.map((d) => d.toFixed(1)).join(' '), 'load', load);
sock.destroy();
server.kill();
