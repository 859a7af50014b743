// The apply kernel of SOURCE_DIFF: rebuilds an operation's output from its source bytes and its
// three decompressed streams (docs/FORMAT.md, "SOURCE_DIFF"). Every length and position comes from
// the payload, so each is checked before it is used; a bad one returns a negative code instead of
// reading or writing outside the buffers.

export const PATCH_OK: i32 = 0;
/** The control stream ends inside an entry, or a number does not fit 32 bits. */
export const PATCH_BAD_CONTROL: i32 = -1;
/** An entry reads source bytes outside the operation's source. */
export const PATCH_SOURCE_RANGE: i32 = -2;
/** The entries produce more bytes than the operation's output. */
export const PATCH_OUTPUT_OVERRUN: i32 = -3;
/** The entries take more difference or extra bytes than the streams hold. */
export const PATCH_STREAM_OVERRUN: i32 = -4;
/** Output, difference or extra bytes left over when the control stream ends. */
export const PATCH_LEFTOVER: i32 = -5;

// Cursor of the varint reader (module global: no allocation).
let cursor: usize = 0;

/** Reads an unsigned LEB128 number below 2^32 from [cursor, end); -1 if malformed. */
@inline function readVarint(end: usize): i64 {
  let value: u64 = 0;
  for (let shift: u64 = 0; shift < 35; shift += 7) {
    if (cursor >= end) return -1;
    const b = <u64>load<u8>(cursor++);
    value |= (b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value > 0xffffffff ? -1 : <i64>value;
  }
  return -1;
}

/** out[i] = a[i] + b[i] (mod 256) for n bytes, 16 at a time. */
function addBytes(out: usize, a: usize, b: usize, n: usize): void {
  let i: usize = 0;
  for (; i + 16 <= n; i += 16) v128.store(out + i, i8x16.add(v128.load(a + i), v128.load(b + i)));
  for (; i < n; i++) store<u8>(out + i, load<u8>(a + i) + load<u8>(b + i));
}

/**
 * Rebuilds [out, out + outLen) from the source [src, src + srcLen) and the control, difference and
 * extra streams. Returns PATCH_OK or one of the negative codes above.
 */
export function patchApply(
  src: usize, srcLen: usize, ctrl: usize, ctrlLen: usize, diff: usize, diffLen: usize,
  extra: usize, extraLen: usize, out: usize, outLen: usize,
): i32 {
  const ctrlEnd = ctrl + ctrlLen;
  cursor = ctrl;
  let o: usize = 0, d: usize = 0, e: usize = 0;
  let expected: i64 = 0;
  while (cursor < ctrlEnd) {
    const n = readVarint(ctrlEnd);
    const x = readVarint(ctrlEnd);
    const z = readVarint(ctrlEnd);
    if (n < 0 || x < 0 || z < 0) return PATCH_BAD_CONTROL;
    // Zigzag: 0, -1, 1, -2, ... are stored as 0, 1, 2, 3, ...
    const delta: i64 = (z & 1) != 0 ? -((z + 1) >> 1) : z >> 1;
    const at = expected + delta;
    if (at < 0 || <u64>(at + n) > <u64>srcLen) return PATCH_SOURCE_RANGE;
    if (<u64>o + <u64>n + <u64>x > <u64>outLen) return PATCH_OUTPUT_OVERRUN;
    if (<u64>d + <u64>n > <u64>diffLen || <u64>e + <u64>x > <u64>extraLen) return PATCH_STREAM_OVERRUN;
    addBytes(out + o, src + <usize>at, diff + d, <usize>n);
    o += <usize>n;
    d += <usize>n;
    memory.copy(out + o, extra + e, <usize>x);
    o += <usize>x;
    e += <usize>x;
    expected = at + n;
  }
  if (o != outLen || d != diffLen || e != extraLen) return PATCH_LEFTOVER;
  return PATCH_OK;
}
