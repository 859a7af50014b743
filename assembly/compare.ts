// Digest list comparison.

/**
 * Index of the first of `count` consecutive 32-byte digests that differs between the lists at
 * `aPtr` and `bPtr`, or -1 if all are equal.
 */
export function firstDigestMismatch(aPtr: usize, bPtr: usize, count: i32): i32 {
  for (let i = 0; i < count; i++) {
    const diff = v128.or(
      v128.xor(v128.load(aPtr, 0), v128.load(bPtr, 0)),
      v128.xor(v128.load(aPtr, 16), v128.load(bPtr, 16)),
    );
    if (v128.any_true(diff)) return i;
    aPtr += 32;
    bPtr += 32;
  }
  return -1;
}
