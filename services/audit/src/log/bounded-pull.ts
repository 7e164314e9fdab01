import { type Consumer, type ConsumerMessages, JetStreamError, type JsMsg } from '@nats-io/jetstream';

import type { WriterQueue } from './writer-queue.js';

/**
 * What @nats-io/jetstream 3.4 asks the server for when a fetch names only max_bytes (it
 * cannot name both). The loop below must stop reading at this count: a request that got all
 * it asked for sends no end of its own, so the fetch would end only in "heartbeats missed"
 * (nats-server 2.9) or a thrown "batch completed" (2.10 and later) — the break is what ends a
 * full request, not a shortcut. Were the library to ask for more, the loop would stop reading
 * a request the server still serves; what it sends then is redelivered after ack_wait
 * (slower, nothing lost: an event already appended is recognised by its id).
 */
const FETCH_MESSAGES = 100;
/** Over a message's payload, what the server also counts against max_bytes (subject, reply, headers). */
export const ENVELOPE_BYTES = 16 * 1_024;
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
    private readonly consumer: Pick<Consumer, 'fetch'>,
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
      // stop() ran while the pull was being set up: it could not close it then. Nothing was
      // asked of the server yet (the library sends the pull once iteration starts), and close()
      // of a fetch never iterated never resolves (the library queues its stop in the iterator):
      // close it, never wait for it.
      if (this.stopped) {
        void fetched.close().catch(() => undefined);
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
        // A pull that handed over messages and then ended with one of these is done; one that
        // handed over none made no progress, and asking again the same way would spin (a message
        // larger than any pull) or wait on a server that does not answer: the session ends.
        if (received === 0 && isPullFull(error)) {
          throw new Error(
            `the AUDIT stream's next message is larger than a pull of ${maxBytes} bytes (max_payload lowered since it was stored?)`,
            { cause: error },
          );
        }
        if (received === 0 || !endsPull(error)) throw error;
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

/**
 * How a pull that handed over messages can end besides its own count: 409 "message size
 * exceeds maxbytes" (its next message would pass max_bytes), "heartbeats missed" (the
 * messages added up to exactly max_bytes, after which nats-server 2.9 ends the request
 * without a word; a reconnect can end one so too), 409 "batch completed" (nats-server 2.12
 * may end a request so before its count). Only the exact status: "exceeded maxrequestmaxbytes"
 * is the consumer's own limit refusing the pull, not a pull that is done.
 */
function endsPull(error: unknown): boolean {
  return (
    isPullFull(error) || isStatus(error, 409, 'batch completed') || isStatus(error, undefined, 'heartbeats missed')
  );
}

/** The status a pull ends with when its next message would pass its max_bytes. */
function isPullFull(error: unknown): boolean {
  return isStatus(error, 409, 'message size exceeds maxbytes');
}

/** The library's error for a status (its code, lowercased description), or one of its own (no code). */
function isStatus(error: unknown, code: number | undefined, message: string): boolean {
  return error instanceof JetStreamError && (error as { code?: unknown }).code === code && error.message === message;
}
