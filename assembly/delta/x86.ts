// The x86 branch filter of the extra stream (docs/FORMAT.md, "SOURCE_DIFF"): the 32-bit relative
// displacement after each E8 (call) or E9 (jmp) byte becomes an absolute position, so calls to
// the same function from different places become the same bytes and compress (the idea of xz's
// BCJ filter). New executables are most of what a delta carries as extra bytes.
//
// Only displacements in [-2^24, 2^24) (top byte 00 or FF) are converted, and the conversion is an
// addition modulo 2^25 kept in that same range, so a converted value is again in the range and
// an unconverted one is not. The scan always moves past the 4 bytes after an opcode, so no
// conversion changes bytes an earlier decision read: decoding makes exactly the encoder's
// decisions and restores every byte, whatever the data (text, zeros, random bytes).

const RANGE: i32 = 1 << 24;

@inline function inRange(v: i32): bool {
  return v >= -RANGE && v < RANGE;
}

/** Sign-extends the low 25 bits. */
@inline function wrap25(v: i32): i32 {
  return (v << 7) >> 7;
}

function filter(ptr: usize, len: usize, sign: i32): void {
  if (len < 5) return;
  const end = len - 4;
  let i: usize = 0;
  while (i < end) {
    const op = load<u8>(ptr + i);
    if (op == 0xe8 || op == 0xe9) {
      // Past the 4 bytes after the opcode whether or not they convert: no later conversion may
      // change bytes that an earlier decision read.
      const v = load<i32>(ptr + i + 1);
      if (inRange(v)) store<i32>(ptr + i + 1, wrap25(v + sign * <i32>(i + 5)));
      i += 5;
      continue;
    }
    i++;
  }
}

/** Relative to absolute, in place. */
export function x86Encode(ptr: usize, len: usize): void {
  filter(ptr, len, 1);
}

/** Absolute to relative, in place: the exact inverse of x86Encode. */
export function x86Decode(ptr: usize, len: usize): void {
  filter(ptr, len, -1);
}
