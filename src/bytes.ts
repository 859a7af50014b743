/** Byte-array helpers any layer may use (no imports). */

/** Whether `a` and `b` hold the same bytes (a digest against its signed value). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Whether `b` starts where `a` ends, in the same buffer. */
export function followedBy(a: Uint8Array, b: Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset;
}

/**
 * `a` then `b`: a view of both where `b` follows `a` in one buffer (how the generator and the
 * applier lay out a zstd dictionary's source and target blocks), else a copy.
 */
export function joined(a: Uint8Array, b: Uint8Array): Uint8Array {
  return followedBy(a, b) ? new Uint8Array(a.buffer, a.byteOffset, a.length + b.length) : Buffer.concat([a, b]);
}
