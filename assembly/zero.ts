// Zero-block detection: which 4096-byte pieces of a range are entirely zero bytes.

import { BLOCK_SIZE } from './layout';

/** True if the `len` bytes at `ptr` are all zero. Stops at the first non-zero 64-byte run. */
function isZeroRange(ptr: usize, len: usize): bool {
  const end = ptr + len;
  // 64 bytes per iteration: four v128 loads OR-ed together, one branch.
  while (ptr + 64 <= end) {
    const acc = v128.or(
      v128.or(v128.load(ptr, 0), v128.load(ptr, 16)),
      v128.or(v128.load(ptr, 32), v128.load(ptr, 48)),
    );
    if (v128.any_true(acc)) return false;
    ptr += 64;
  }
  // Tail of a short piece: u64 words, then single bytes.
  let rest: u64 = 0;
  while (ptr + 8 <= end) {
    rest |= load<u64>(ptr);
    ptr += 8;
  }
  while (ptr < end) {
    rest |= <u64>load<u8>(ptr);
    ptr++;
  }
  return rest == 0;
}

/**
 * One byte per BLOCK_SIZE-byte piece of [ptr, ptr + len) to `out` (the last piece may be short):
 * 1 if every byte of the piece is zero, else 0. Writes ceil(len / 4096) bytes and returns the
 * number of zero pieces.
 */
export function zeroBlockFlags(ptr: usize, len: usize, out: usize): i32 {
  let zeros = 0;
  while (len != 0) {
    const n = min<usize>(len, BLOCK_SIZE);
    const zero = isZeroRange(ptr, n);
    store<u8>(out, <u8>zero);
    zeros += <i32>zero;
    ptr += n;
    len -= n;
    out++;
  }
  return zeros;
}
