import { createHash } from 'node:crypto';

/**
 * A small seeded PRNG (sfc32) so seeded data is the same on every run and every machine:
 * tests and benchmarks compare against it. Not for secrets — tokens use node:crypto.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    const h = createHash('sha256').update(seed).digest();
    this.a = h.readUInt32LE(0);
    this.b = h.readUInt32LE(4);
    this.c = h.readUInt32LE(8);
    this.d = h.readUInt32LE(12);
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    this.d >>>= 0;
    let t = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    t = (t + this.d) | 0;
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(values: readonly T[]): T {
    return values[Math.floor(this.next() * values.length)] as T;
  }

  bool(probability = 0.5): boolean {
    return this.next() < probability;
  }

  /** `n` characters from `alphabet` (e.g. Spotify's base62 ids). */
  chars(n: number, alphabet = BASE62): string {
    let out = '';
    for (let i = 0; i < n; i++) out += alphabet[Math.floor(this.next() * alphabet.length)];
    return out;
  }

  words(n: number): string {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.pick(WORDS));
    return out.join(' ');
  }
}

export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `values[index]` for an index drawn inside the list (e.g. with `rng.int(0, values.length - 1)`). */
export function itemAt<T>(values: readonly T[], index: number): T {
  const value = values[index];
  if (value === undefined) throw new RangeError(`index ${index} is outside a list of ${values.length}`);
  return value;
}

export const WORDS = [
  'amber',
  'atlas',
  'beacon',
  'birch',
  'cactus',
  'canyon',
  'cedar',
  'cobalt',
  'comet',
  'coral',
  'delta',
  'ember',
  'falcon',
  'fern',
  'fjord',
  'glacier',
  'harbor',
  'hazel',
  'indigo',
  'iris',
  'jade',
  'juniper',
  'kestrel',
  'lagoon',
  'lantern',
  'maple',
  'meadow',
  'nebula',
  'nova',
  'oasis',
  'onyx',
  'orchid',
  'pebble',
  'pine',
  'prairie',
  'quartz',
  'raven',
  'reef',
  'saffron',
  'sierra',
  'summit',
  'tundra',
  'velvet',
  'willow',
  'zephyr',
  'echo',
  'river',
  'stone',
  'cloud',
  'signal',
] as const;

/** A fixed origin for seeded timestamps, so seeded data does not depend on the clock. */
export const SEED_EPOCH_MS = Date.UTC(2024, 0, 1);

export function isoAt(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
