// The query benchmark's load generator, in a process of its own (so its CPU is not the
// server's and it is not slowed by the bench's own bookkeeping). Started by query.bench.mjs
// with one JSON argument; prints one JSON line with what it measured.
//
// Two modes:
// - closed: CONNECTIONS clients each send the next request when the answer to the last one
//   came (autocannon). Gives the maximum rate; its latencies hide queueing, because a slow
//   answer also delays the requests that would have come meanwhile (coordinated omission).
// - open: requests start on a fixed schedule (RATE per second) whatever the answers do, and
//   each latency is measured from the moment the request was DUE, not from when a free
//   socket let it go. A server that falls behind shows it in p99, as users would see it.
import net from 'node:net';

import autocannon from 'autocannon';

/** A request that starts this much after it was due counts in `lateStarts` (its latency has it anyway). */
const LATE_MS = 5;

const config = JSON.parse(process.argv[2] ?? '{}');
const { url, paths, headers = {}, mode, seconds, connections, rate } = config;
if (!url || !Array.isArray(paths) || paths.length === 0 || !['closed', 'open'].includes(mode))
  throw new Error('usage: load-generator.mjs {"url","paths":[...],"mode":"closed"|"open","seconds",...}');

async function closedLoop() {
  let i = 0;
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    headers,
    requests: [{ setupRequest: (req) => ({ ...req, path: paths[i++ % paths.length] }) }],
  });
  return {
    ok: r['2xx'],
    failed: r.non2xx + r.errors + r.timeouts,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
  };
}

async function openLoop() {
  const target = new URL(url);
  const headerLines = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  // Each path's request bytes built once: a request is one write of a prebuilt buffer.
  const requests = paths.map((path) =>
    Buffer.from(`GET ${path} HTTP/1.1\r\nhost: ${target.host}\r\n${headerLines}\r\n`, 'latin1'),
  );
  // Sockets open as the load needs them, up to this many: enough that the schedule, not a
  // free socket, starts a request (one that still waits for a socket counts from its due time).
  const maxSockets = Math.max(256, connections ?? 0);
  const idle = [];
  const waiting = [];
  /** Every connection open or opening, idle or busy: all closed when the measuring ends. */
  const sockets = new Set();
  const interval = 1000 / rate;
  const total = Math.floor(rate * seconds);
  // A failed request (no answer, or not 2xx) ranks at an infinite latency: a user who got an
  // error or nothing was not served in any time, and a fast failure must not pass for a fast answer.
  const latencies = new Float64Array(total);
  let done = 0;
  let ok = 0;
  let failed = 0;
  let retried = 0;
  let late = 0;
  let lastAnswer = 0;
  let firstError;
  /** Set when the measuring ended: what the sockets do after it (closing, late answers) is not counted. */
  let stopped = false;
  let finished;
  const allDone = new Promise((resolve) => (finished = resolve));

  const pool = {
    complete(due, status) {
      if (stopped) return;
      const now = performance.now();
      const good = status >= 200 && status < 300;
      latencies[done] = good ? now - due : Infinity;
      done += 1;
      if (good) ok += 1;
      else failed += 1;
      if (status) lastAnswer = now;
      if (done === total) finished();
    },
    release(socket) {
      if (stopped) return;
      const next = waiting.shift();
      if (next) socket.send(next.bytes, next.due, next.again);
      else idle.push(socket);
    },
    closed(socket) {
      sockets.delete(socket);
      const at = idle.indexOf(socket);
      if (at >= 0) idle.splice(at, 1);
      // A request waiting for a socket gets this one's place (a server that closes each
      // connection after its answer would otherwise leave the queue to no one).
      const next = !stopped && waiting.shift();
      if (next) start(next.bytes, next.due, next.again);
    },
    failed(error) {
      firstError ??= error;
    },
    retry(bytes, due) {
      retried += 1;
      start(bytes, due, true);
    },
  };
  function start(bytes, due, again = false) {
    if (stopped) return;
    let socket = idle.pop();
    if (!socket && sockets.size < maxSockets) {
      socket = new Connection(target, pool);
      sockets.add(socket);
    }
    if (socket) socket.send(bytes, due, again);
    else waiting.push({ bytes, due, again });
  }

  const begin = performance.now();
  let n = 0;
  // One timer per wake-up, not per request: each wake-up starts every request due by then,
  // and each latency still counts from its own due time (no coordinated omission).
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      for (; n < total && begin + n * interval <= now; n += 1) {
        const due = begin + n * interval;
        if (now - due > LATE_MS) late += 1; // the generator itself fell behind the schedule
        start(requests[n % requests.length], due);
      }
      if (n >= total) resolve();
      else setTimeout(tick, Math.max(0, begin + n * interval - performance.now()));
    };
    tick();
  });
  // What has no answer 30 s after the last request was due counts as failed (timedOut), at an
  // infinite latency; then nothing more is sent (the queue emptied) and every socket is closed,
  // busy ones too, so the process can exit at once.
  let timer;
  if (total > 0) await Promise.race([allDone, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
  clearTimeout(timer);
  stopped = true;
  waiting.length = 0;
  for (const socket of sockets) socket.close();
  const timedOut = total - done;
  if (timedOut) firstError ??= new Error(`${timedOut} requests without an answer after 30 s`);
  failed += timedOut;
  latencies.fill(Infinity, done);
  if (firstError) console.error(`load generator: ${failed} failed, the first: ${firstError.message}`);
  latencies.sort();
  // JSON has no Infinity (it would write null, which compares as 0): an infinite latency is the string "Infinity".
  const at = (q) => {
    const ms = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? NaN;
    return Number.isFinite(ms) ? +ms.toFixed(1) : String(ms);
  };
  return {
    ok,
    failed,
    timedOut,
    retried,
    p50: at(0.5),
    p99: at(0.99),
    max: at(1),
    scheduled: total,
    lateStarts: late,
    // From the first request's due time to the last answer: the rate achieved is ok / spanMs,
    // not the schedule's (a server that falls behind stretches it).
    spanMs: total && lastAnswer ? +(lastAnswer - begin).toFixed(1) : 0,
  };
}

const HEAD = 0;
const BODY = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;

/**
 * One keep-alive HTTP/1.1 connection carrying one request at a time: a prebuilt request
 * written in one call, the answer's head read for its status and length, its body skipped
 * (Content-Length or chunked); an answer with `connection: close` closes it after the answer.
 * A request on a socket that had already carried an answer, closed by the server before any
 * byte of this one's answer came (an idle keep-alive socket it timed out as the request left),
 * is sent once more on another, as Node's http Agent does, and counted in `retried`; any other
 * failure (a new connection closed or refused, an answer cut short) counts the request as failed.
 */
class Connection {
  #socket;
  #pool;
  #bytes;
  #due = 0;
  /** Bytes read but not parsed yet (a head or a chunk size line cut by the socket's read). */
  #rest = undefined;
  #state = HEAD;
  /** Bytes of the body (BODY) or of the chunk and its line end (CHUNK_DATA) still to come. */
  #left = 0;
  #answered = false;
  #again = false;
  #status = 0;
  /** Answers this socket has carried to the end. */
  #carried = 0;
  /** The answer being read said `connection: close`. */
  #closes = false;

  constructor(target, pool) {
    this.#pool = pool;
    this.#socket = net.connect({ host: target.hostname, port: Number(target.port || 80), noDelay: true });
    this.#socket.on('data', (chunk) => this.#read(chunk));
    this.#socket.on('error', (error) => this.#end(error));
    this.#socket.on('close', () => this.#end(new Error('connection closed')));
  }

  /** Sends `bytes` (a request due at `due`); `again`: it is the second attempt. */
  send(bytes, due, again) {
    this.#bytes = bytes;
    this.#due = due;
    this.#rest = undefined;
    this.#state = HEAD;
    this.#answered = false;
    this.#again = again;
    this.#socket.write(bytes);
  }

  close() {
    this.#socket.destroy();
  }

  /** Reads the answer's bytes as they come: head, then a Content-Length body or chunks. */
  #read(chunk) {
    if (this.#bytes === undefined) return this.#fail(new Error('bytes with no request'));
    this.#answered = true;
    const data = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk;
    this.#rest = undefined;
    let at = 0;
    if (this.#state === HEAD) {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) {
        this.#rest = data;
        return;
      }
      const head = data.toString('latin1', 0, end);
      this.#status = Number(head.slice(9, 12));
      this.#closes = /\r\nconnection: *close/i.test(head);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (length) {
        this.#left = Number(length[1]);
        this.#state = BODY;
      } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) this.#state = CHUNK_SIZE;
      else return this.#fail(new Error(`an answer of unknown length: ${head.split('\r\n', 1)[0]}`));
      at = end + 4;
    }
    for (;;) {
      if (this.#state !== CHUNK_SIZE) {
        const take = Math.min(this.#left, data.length - at);
        this.#left -= take;
        at += take;
        if (this.#left > 0) return;
        if (this.#state === BODY) break;
        this.#state = CHUNK_SIZE;
      }
      // A chunk's size line (an extension after `;` is ignored: parseInt stops there); the
      // last chunk (size 0) ends with an empty line (trailers are not read).
      const eol = data.indexOf('\r\n', at);
      if (eol < 0) {
        this.#rest = data.subarray(at);
        return;
      }
      const size = Number.parseInt(data.toString('latin1', at, eol), 16);
      if (Number.isNaN(size)) return this.#fail(new Error('a malformed chunk size'));
      if (size === 0) {
        if (data.length < eol + 4) {
          this.#rest = data.subarray(at); // the empty line has not all come yet
          return;
        }
        if (data[eol + 2] !== 0x0d || data[eol + 3] !== 0x0a) return this.#fail(new Error('trailers are not read'));
        at = eol + 4;
        break;
      }
      at = eol + 2;
      this.#left = size + 2; // the chunk and the line end after it
      this.#state = CHUNK_DATA;
    }
    if (at !== data.length) return this.#fail(new Error('more bytes than the answer had (pipelined or malformed)'));
    const due = this.#due;
    this.#bytes = undefined;
    this.#carried += 1;
    this.#pool.complete(due, this.#status);
    if (this.#closes)
      this.#fail(undefined); // idle now: nothing lost, the socket just goes
    else this.#pool.release(this);
  }

  #fail(error) {
    this.#socket.destroy();
    this.#end(error);
  }

  /** The socket is done with (closed, failed, or an answer it could not read): once. */
  #end(error) {
    const pool = this.#pool;
    if (!pool) return;
    this.#pool = undefined;
    this.#socket.destroy();
    pool.closed(this);
    if (this.#bytes === undefined) return; // idle: nothing lost
    if (this.#carried > 0 && !this.#answered && !this.#again) pool.retry(this.#bytes, this.#due);
    else {
      pool.failed(error);
      pool.complete(this.#due, 0);
    }
  }
}

// Last, after the class declaration it needs.
const cpu0 = process.cpuUsage();
const result = mode === 'closed' ? await closedLoop() : await openLoop();
const cpu = process.cpuUsage(cpu0);
// Exits once the line is out: nothing left running (sockets, timers) may keep it alive.
process.stdout.write(`${JSON.stringify({ ...result, generatorCpuMs: (cpu.user + cpu.system) / 1000 })}\n`, () =>
  process.exit(0),
);
