/**
 * How a delta payload cuts the target image into operations, from what the block index found:
 * for each target block, whether it is all zero and which source block (if any) holds its bytes.
 *
 *  - a run of at least MIN_ZERO_RUN zero blocks becomes ZERO;
 *  - a run of at least MIN_COPY_RUN blocks found in the source becomes SOURCE_COPY (the source
 *    blocks may lie anywhere, in any order: the operation lists them as extents);
 *  - everything else is gathered, in target order, into diff ranges of at most DIFF_OP_BLOCKS,
 *    short copy and zero runs included: the diff encoder copies those from the source for a few
 *    bytes, and one larger operation compresses better than many small ones.
 *
 * Operations cover the target block after block in order, as the format requires (docs/FORMAT.md).
 */
import { BLOCK_SIZE, LIMITS } from '../format/constants.js';
import type { Extent } from '../format/manifest.js';

/** Zero runs at least this long become ZERO operations (as in full payloads). */
export const MIN_ZERO_RUN = 16;
/**
 * Copy runs at least this long become SOURCE_COPY operations. A SOURCE_COPY costs ~100 manifest
 * bytes; the same blocks inside a diff cost a control entry and compressed zero bytes, a few bytes.
 */
export const MIN_COPY_RUN = 32;
/** Target blocks per diff operation: 4 MiB, enough context for the codec, small enough to parallelize. */
export const DIFF_OP_BLOCKS = 1024;
/** Largest block count one extent holds (u32 in the format): longer zero runs take several operations. */
const MAX_EXTENT_BLOCKS = 0xffffffff;
/** Blocks per SOURCE_COPY operation: its output is hashed in memory, so it obeys the output limit. */
export const COPY_OP_BLOCKS = LIMITS.MAX_OP_OUTPUT / BLOCK_SIZE;

export type PlannedOp =
  | { kind: 'zero'; start: number; count: number }
  | { kind: 'copy'; start: number; count: number; source: Extent[] }
  | { kind: 'diff'; start: number; count: number };

/**
 * Cuts `blocks` target blocks into operations. `zero[b]` is 1 for an all-zero block, `match[b]` the
 * source block holding block b's bytes or -1.
 */
export function planDelta(blocks: number, zero: Uint8Array, match: Int32Array, diffBlocks: number = DIFF_OP_BLOCKS): PlannedOp[] {
  const plan: PlannedOp[] = [];
  let diffStart = -1;
  const closeDiff = (end: number) => {
    for (let s = diffStart; diffStart >= 0 && s < end; s += diffBlocks) {
      plan.push({ kind: 'diff', start: s, count: Math.min(diffBlocks, end - s) });
    }
    diffStart = -1;
  };
  let b = 0;
  while (b < blocks) {
    let end = b + 1;
    if (zero[b] === 1) {
      while (end < blocks && zero[end] === 1) end++;
      if (end - b >= MIN_ZERO_RUN) {
        closeDiff(b);
        for (let s = b; s < end; s += MAX_EXTENT_BLOCKS) plan.push({ kind: 'zero', start: s, count: Math.min(MAX_EXTENT_BLOCKS, end - s) });
        b = end;
        continue;
      }
    } else if (match[b]! >= 0) {
      while (end < blocks && match[end]! >= 0 && zero[end] !== 1) end++;
      if (end - b >= MIN_COPY_RUN) {
        closeDiff(b);
        for (let s = b; s < end; s += COPY_OP_BLOCKS) {
          const count = Math.min(COPY_OP_BLOCKS, end - s);
          plan.push({ kind: 'copy', start: s, count, source: sourceExtents(match, s, count) });
        }
        b = end;
        continue;
      }
    }
    if (diffStart < 0) diffStart = b;
    b = end;
  }
  closeDiff(blocks);
  return plan;
}

/** The source blocks match[start .. start + count) as extents, consecutive blocks merged. */
export function sourceExtents(match: Int32Array, start: number, count: number): Extent[] {
  const extents: Extent[] = [];
  for (let i = start; i < start + count; i++) {
    const s = match[i]!;
    const last = extents[extents.length - 1];
    if (last && last.startBlock + last.blockCount === s) last.blockCount++;
    else extents.push({ startBlock: s, blockCount: 1 });
  }
  return extents;
}
