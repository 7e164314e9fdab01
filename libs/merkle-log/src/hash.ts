import { createHash, hash, timingSafeEqual } from 'node:crypto';

/**
 * RFC 9162 §2.1.1 hashing with SHA-256. The 0x00 / 0x01 domain-separation prefixes are
 * what stop a leaf from being passed off as an interior node (second-preimage attack).
 */
export const HASH_SIZE = 32;

/** The byte every leaf hash's input starts with. */
export const LEAF_HASH_PREFIX = 0x00;
const LEAF_PREFIX = Buffer.from([LEAF_HASH_PREFIX]);
const NODE_HASH_PREFIX = 0x01;

/** MTH({d(0)}) = SHA-256(0x00 || d(0)). */
export function leafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(data).digest();
}

/**
 * Plain SHA-256 of bytes that already carry their domain-separation prefix, in hex. One-shot
 * `crypto.hash` (no Hash object per call): the audit writer hashes every leaf and about
 * one node per leaf on its one thread, and the object costs more than hashing 65 bytes.
 */
export function sha256Hex(data: Uint8Array): string {
  return hash('sha256', data, 'hex');
}

/**
 * sha256Hex's digest as bytes. Read back from the hex rather than asked of `crypto.hash`
 * as a 'buffer': on Node 20 that output is a new ArrayBuffer with its own backing store
 * per call, which its allocation and the garbage collector's threads make cost about twice
 * as much for a 1 KB leaf (~2.4 against ~1.2 µs of process CPU: docs/perf/README.md,
 * eighth session); a 32-byte Buffer.from comes from Node's pool. So the result is a view
 * into Node's shared pool (as are nodeHash's, leaf hashes and roots): use its offset and
 * length, never `.buffer` alone, and copy it into an ArrayBuffer of its own before
 * transferring it to a thread or cloning it (structuredClone would copy the whole slab).
 */
export function sha256(data: Uint8Array): Buffer {
  return Buffer.from(sha256Hex(data), 'hex');
}

/** SHA-256(0x01 || left || right): the hash of an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  const input = Buffer.allocUnsafe(1 + left.length + right.length);
  input[0] = NODE_HASH_PREFIX;
  input.set(left, 1);
  input.set(right, 1 + left.length);
  return sha256(input);
}

/** MTH({}) = SHA-256() — the root of the empty tree. */
export const EMPTY_ROOT_HASH: Buffer = createHash('sha256').digest();

export function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_SIZE;
}

/** Constant-time comparison; false (not a throw) for anything that is not two 32-byte hashes. */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return isHash(a) && isHash(b) && timingSafeEqual(a, b);
}
