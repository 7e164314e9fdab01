/**
 * Work due at the end of this turn of the event loop (after the poll phase's I/O callbacks),
 * run in ONE setImmediate, stage by stage: every `publish` callback before every `ping` one.
 *
 * Why one: the audit group commit publishes its batch at the end of the turn, and ControlHead
 * sends its freshness PING then. nats.js writes a PING at once, with whatever is already
 * queued; a command queued after it waits for the client's own deferred flush, which — queued
 * from inside the check phase — runs only in the next turn, in a socket write of its own. With
 * two separate setImmediates the order was whichever request came first in the turn; here the
 * audit batch is always queued first, and leaves in the PING's write when both are due in the
 * same turn. Nothing waits any longer than before: both still run at the end of the same turn.
 */
export type TurnEndStage = 'publish' | 'ping';

const due: Record<TurnEndStage, (() => void)[]> = { publish: [], ping: [] };
let scheduled = false;

/** Runs `run` at the end of this turn, in its stage; the caller binds any async context it needs. */
export function atTurnEnd(stage: TurnEndStage, run: () => void): void {
  due[stage].push(run);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runTurnEnd);
  }
}

function runTurnEnd(): void {
  scheduled = false;
  let failure: { error: unknown } | undefined;
  for (const stage of [due.publish, due.ping]) {
    // What a callback schedules for the end of the turn runs in the next one, as with setImmediate.
    const runs = stage.splice(0);
    for (const run of runs) {
      try {
        run();
      } catch (error) {
        // Every other callback still runs; the first error is thrown after, as setImmediate would.
        failure ??= { error };
      }
    }
  }
  if (failure) throw failure.error;
}
