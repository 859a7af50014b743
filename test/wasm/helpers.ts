// Shared helpers for the WASM core tests: seeded data and node:crypto reference implementations.
import { createHash } from 'node:crypto';

export const BUILDS = ['release', 'debug'] as const;

/** Deterministic pseudo-random bytes (xorshift32), so a failure reproduces. */
export function seededBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Deterministic integer in [0, n) from a seeded generator. */
export function seededInts(seed: number): (n: number) => number {
  let x = (seed * 2246822519 + 7) >>> 0 || 1;
  return (n) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

/** Copy of `data` at byteOffset `shift` inside a larger buffer (exercises unaligned views). */
export function shifted(data: Uint8Array, shift: number): Uint8Array {
  const backing = new Uint8Array(data.length + shift + 5).fill(0xa5);
  backing.set(data, shift);
  return backing.subarray(shift, shift + data.length);
}

export function sha256Ref(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Reference per-4096-byte-piece digests, concatenated. */
export function blockDigestsRef(data: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  for (let pos = 0; pos < data.length; pos += 4096) parts.push(sha256Ref(data.subarray(pos, pos + 4096)));
  return Buffer.concat(parts);
}

/** Reference block-list hash: SHA-256 over the concatenated per-piece digests. */
export function blockListHashRef(data: Uint8Array): Buffer {
  return sha256Ref(blockDigestsRef(data));
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
