import { type VerifiedCheckpoint, verifyCheckpoint, verifyCosignature } from '@context-gateway/merkle-log';

import type { PinnedKey } from './pinned-key.js';

export type WitnessedCheckpoint =
  { ok: true; checkpoint: VerifiedCheckpoint; cosignedAt: Date } | { ok: false; reason: string };

/**
 * Reads the latest checkpoint the witness cosigned for this log (`GET <url>/checkpoint`,
 * services/witness) and checks both signatures against pinned keys: the witness's
 * cosignature (so the answer is the witness's, whatever carried it) and the log's signature
 * (so it is a tree this log signed). The stored log must then extend it: a log cut short or
 * rewritten since cannot (verify-stored-log). Throws when the witness cannot be asked.
 */
export async function fetchWitnessedCheckpoint(options: {
  url: string;
  origin: string;
  witness: PinnedKey;
  log: PinnedKey;
  timeoutMs?: number;
}): Promise<WitnessedCheckpoint | undefined> {
  const url = `${options.url.replace(/\/+$/, '')}/checkpoint?origin=${encodeURIComponent(options.origin)}`;
  const response = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
  const text = await response.text();
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`the witness answered ${response.status}: ${text.slice(0, 200)}`);
  return checkWitnessedNote(text, options);
}

/** The checks of fetchWitnessedCheckpoint on a note already at hand (a copy kept by an auditor). */
export function checkWitnessedNote(
  note: string,
  options: { origin: string; witness: PinnedKey; log: PinnedKey },
): WitnessedCheckpoint {
  const cosigned = verifyCosignature(note, options.witness.publicKey, options.witness.name);
  if (!cosigned.ok) return { ok: false, reason: `the witness's checkpoint: ${cosigned.reason}` };
  const signed = verifyCheckpoint(note, options.log.publicKey, { origin: options.origin, keyName: options.log.name });
  if (!signed.ok) return { ok: false, reason: `the checkpoint the witness cosigned: ${signed.reason}` };
  return { ok: true, checkpoint: signed.checkpoint, cosignedAt: new Date(cosigned.timestamp * 1000) };
}
