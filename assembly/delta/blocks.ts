// The source block index: every source block's SHA-256 in an open-addressing table, so that each
// target block that exists anywhere in the source is found in O(1), whatever its offset.

/** True if the 32-byte digests at a and b are equal. */
@inline function sameDigest(a: usize, b: usize): bool {
  const diff = v128.or(v128.xor(v128.load(a), v128.load(b)), v128.xor(v128.load(a, 16), v128.load(b, 16)));
  return !v128.any_true(diff);
}

@inline function slotOf(digest: usize, mask: u32): u32 {
  return load<u32>(digest) & mask;
}

/**
 * Indexes source blocks [first, first + count) whose digests lie at `digests` (32 bytes each, block
 * i at digests + 32 * i) into `table` (u32 per slot: block number + 1, 0 = empty; mask + 1 slots,
 * at least twice the source block count). Blocks flagged non-zero in `skip` (one byte per block,
 * relative to `first`) are left out: all-zero blocks become ZERO operations, not copies. The first
 * block with a given content wins.
 */
export function blockIndexAdd(digests: usize, first: u32, count: u32, skip: usize, table: usize, mask: u32): void {
  for (let j: u32 = 0; j < count; j++) {
    if (load<u8>(skip + j) != 0) continue;
    const block = first + j;
    const d = digests + (<usize>block << 5);
    let slot = slotOf(d, mask);
    while (true) {
      const v = load<u32>(table + (<usize>slot << 2));
      if (v == 0) {
        store<u32>(table + (<usize>slot << 2), block + 1);
        break;
      }
      if (sameDigest(digests + (<usize>(v - 1) << 5), d)) break;
      slot = (slot + 1) & mask;
    }
  }
}

/** The source block whose digest equals the one at `d`, or -1. */
function findBlock(digests: usize, table: usize, mask: u32, d: usize): i32 {
  let slot = slotOf(d, mask);
  while (true) {
    const v = load<u32>(table + (<usize>slot << 2));
    if (v == 0) return -1;
    if (sameDigest(digests + (<usize>(v - 1) << 5), d)) return <i32>(v - 1);
    slot = (slot + 1) & mask;
  }
}

/**
 * For `count` target blocks starting at target block `first` (digests at `targetDigests`, zero
 * flags at `zero`), writes to `out` (i32 each) the source block holding the same bytes, or -1.
 * Zero blocks get -1 (they become ZERO operations). Among equal source blocks it prefers the one
 * after the previous block's match, then the one at the same offset, so that copies form long
 * extents; `previous` is the match of block first - 1 (or -1). Returns how many matched.
 */
export function blockIndexMatch(
  sourceDigests: usize, sourceBlocks: u32, table: usize, mask: u32,
  targetDigests: usize, first: u32, count: u32, zero: usize, out: usize, previous: i32,
): u32 {
  let matched: u32 = 0;
  for (let j: u32 = 0; j < count; j++) {
    let m: i32 = -1;
    if (load<u8>(zero + j) == 0) {
      const d = targetDigests + (<usize>j << 5);
      const next = previous + 1;
      const same = first + j;
      if (previous >= 0 && <u32>next < sourceBlocks && sameDigest(sourceDigests + (<usize>next << 5), d)) m = next;
      else if (same < sourceBlocks && sameDigest(sourceDigests + (<usize>same << 5), d)) m = <i32>same;
      else m = findBlock(sourceDigests, table, mask, d);
    }
    store<i32>(out + (<usize>j << 2), m);
    if (m >= 0) matched++;
    previous = m;
  }
  return matched;
}
