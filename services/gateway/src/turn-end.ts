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
 *
 * `scheduled` is module state: under jest's fake timers a setImmediate that is never run (or
 * is cleared by `jest.clearAllTimers`) leaves it set, and every later atTurnEnd in that module
 * instance then waits forever. Run the timers, or use real ones, where atTurnEnd is reached.
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
  // Both stages are taken before any callback runs: what a callback schedules for the end of
  // the turn, in either stage, runs in the next one, as with setImmediate.
  const errors = runStages([due.publish.splice(0), due.ping.splice(0)]);
  // As setImmediate would: the error thrown, once every callback ran; all of them if several.
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} turn-end callbacks threw`);
}

/** Runs the stages in order, every callback even after one threw; returns what they threw. */
export function runStages(stages: readonly (readonly (() => void)[])[]): unknown[] {
  const errors: unknown[] = [];
  for (const stage of stages)
    for (const run of stage) {
      try {
        run();
      } catch (error) {
        errors.push(error);
      }
    }
  return errors;
}
