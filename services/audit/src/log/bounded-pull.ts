import { type Consumer, type ConsumerMessages, JetStreamError, type JsMsg } from '@nats-io/jetstream';

import type { WriterQueue } from './writer-queue.js';

/**
 * What @nats-io/jetstream 3.4 asks the server for when a fetch names only max_bytes (it
 * cannot name both). A request that got this many is complete: waiting for its end would
 * wait out `expires`. Were the library to ask for more, the loop below would stop reading a
 * request the server still serves; what it sends then is redelivered after ack_wait
 * (slower, nothing lost: an event already appended is recognised by its id).
 */
const FETCH_MESSAGES = 100;
/** Over a message's payload, what the server also counts against max_bytes (subject, reply, headers). */
const ENVELOPE_BYTES = 16 * 1_024;
/** How long one pull request stays open while the stream has nothing (then the next goes out). */
const FETCH_EXPIRES_MS = 5_000;

/**
 * Pulls the log writer's messages into its queue only while the queue has room, each pull
 * bounded in bytes — so what is pulled and not yet written stays about two batches' payload
 * plus one pull, whatever the messages carry. consume() cannot do this: it asks for more as
 * messages arrive rather than as they are taken, and its only bound is max_ack_pending, a
 * count of messages (WriterQueue.room()).
 */
export class BoundedPull {
  private stopped = false;
  private current: ConsumerMessages | undefined;

  /** `maxMessageBytes`: the largest message the server accepts (its max_payload), so every message fits a pull. */
  constructor(
    private readonly consumer: Consumer,
    private readonly maxMessageBytes: number,
  ) {}

  /** Fills `queue` until stop(); rejects on a failure the writer session should end on (it is then restarted). */
  async run(queue: WriterQueue<JsMsg>): Promise<void> {
    while (!this.stopped) {
      await queue.room();
      if (this.stopped) return;
      // Never below one message's size: a message that fits no pull would stall the log.
      const maxBytes = Math.max(queue.roomBytes(), this.maxMessageBytes + ENVELOPE_BYTES);
      const fetched = await this.consumer.fetch({ max_bytes: maxBytes, expires: FETCH_EXPIRES_MS });
      this.current = fetched;
      // stop() ran while the pull was being set up: it could not close it then.
      if (this.stopped) {
        await fetched.close().catch(() => undefined);
        return;
      }
      let received = 0;
      try {
        for await (const m of fetched) {
          queue.push(m);
          received += 1;
          if (received === FETCH_MESSAGES) break;
        }
      } catch (error) {
        // The server ends a pull whose next message would pass max_bytes this way: the pull is done.
        if (!isPullFull(error)) throw error;
      } finally {
        this.current = undefined;
      }
    }
  }

  /** Ends the open pull (at once: no new one starts); what it had not handed over yet comes back after ack_wait. */
  stop(): Promise<void> {
    this.stopped = true;
    return (
      this.current?.close().then(
        () => undefined,
        () => undefined,
      ) ?? Promise.resolve()
    );
  }
}

/** The status a pull ends with when its next message would pass its max_bytes (409, "message size exceeds maxbytes"). */
function isPullFull(error: unknown): boolean {
  return (
    error instanceof JetStreamError && (error as { code?: unknown }).code === 409 && /maxbytes/i.test(error.message)
  );
}
