/**
 * Byte strings (ciphertexts, digests) as one binary parameter and where each one is in it
 * (1-based, for SQL's substring; null for a null one). A bytea[] parameter goes as text:
 * every byte written out as two hex digits and escaped here, then read back by Postgres, which
 * was about a tenth of a shard's CPU while a sync wrote, and more of Postgres's. One Buffer
 * goes as it is.
 */
export function packBytes(values: (Buffer | null)[]): {
  bytes: Buffer;
  at: (number | null)[];
  lengths: (number | null)[];
} {
  const at: (number | null)[] = [];
  const lengths: (number | null)[] = [];
  const present: Buffer[] = [];
  let offset = 1;
  for (const value of values) {
    if (value === null) {
      at.push(null);
      lengths.push(null);
      continue;
    }
    at.push(offset);
    lengths.push(value.length);
    present.push(value);
    offset += value.length;
  }
  return { bytes: Buffer.concat(present, offset - 1), at, lengths };
}
