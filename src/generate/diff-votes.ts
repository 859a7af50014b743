/**
 * Which blocks a diff range (diff-op.ts) reads, within the format's limits: the source blocks and
 * the earlier target blocks its anchors vote for in the fingerprint indexes, and those chosen of
 * them for the matcher's source buffer and for zstd's dictionary.
 */
import { BLOCK_SIZE, LIMITS } from '../format/constants.js';
import type { Extent } from '../format/manifest.js';
import type { AnchorIndex } from '../wasm/indexes.js';
import type { DiffJob } from './diff-job.js';

/** Source blocks one diff may read: the format's limit on an operation's source. */
export const MAX_DIFF_SOURCE_BLOCKS = LIMITS.MAX_OP_SOURCE / BLOCK_SIZE;
/** Extra source blocks per target block that the votes may bring in, beyond exact copies. */
const SOURCE_PER_TARGET = 3;

/**
 * What `t` (a diff job's target blocks from `start`) resembles, by the fingerprint indexes: the
 * source blocks (DiffJob.sourceVotes) and, given the target's index, the earlier target blocks,
 * most voted first, at most the format's 4096 (DiffJob.targetVotes). Runs in the main thread, which
 * holds both indexes: one copy of each instead of one per worker (the source's is 24 MiB for a
 * 512 MiB image).
 */
export function votesOf(source: AnchorIndex, target: AnchorIndex | undefined, t: Uint8Array, start: number, sourceBlocks: number): Pick<DiffJob, 'sourceVotes' | 'targetVotes'> {
  const sourceVotes = Int32Array.from([...source.votes(t, sourceBlocks)].flat());
  if (!target) return { sourceVotes };
  const ranked = [...target.votes(t, start).entries()].sort((a, b) => b[1] - a[1] || b[0] - a[0]).slice(0, LIMITS.MAX_TARGET_DICTIONARY_BLOCKS);
  return { sourceVotes, targetVotes: Int32Array.from(ranked.flat()) };
}

/**
 * The source blocks S is made of, ascending: every exact copy the block index found in the range,
 * then the blocks most voted for by anchor hits, up to the budget.
 */
export function chooseSourceBlocks(count: number, copies: Int32Array, sourceVotes: Int32Array): number[] {
  const budget = Math.min(MAX_DIFF_SOURCE_BLOCKS, count * (1 + SOURCE_PER_TARGET));
  const picked = new Set<number>();
  for (const c of copies) if (c >= 0) picked.add(c);

  const ranked: [number, number][] = [];
  for (let i = 0; i + 1 < sourceVotes.length; i += 2) if (!picked.has(sourceVotes[i]!)) ranked.push([sourceVotes[i]!, sourceVotes[i + 1]!]);
  ranked.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  for (const [block] of ranked) {
    if (picked.size >= budget) break;
    picked.add(block);
  }
  return [...picked].sort((a, b) => a - b);
}

/**
 * Earlier target blocks for a range's dictionary, at most the format's 4096: those the range's
 * anchors point to in the target before it (`targetVotes`, DiffJob.targetVotes, of the range from
 * block `start`), most voted first. New files in a release resemble each
 * other (one package's programs share their library code), and zstd --patch-from sees that because
 * its window spans the new image; an image updated in place scatters a package's files over the
 * free space, so the similar blocks are found by content, not taken from right before the range.
 * Only the voted blocks: the 16 MiB right before each range as well made the 512 MiB in-place
 * pair's delta 30% larger (zstd's matches into the dictionary cost more offset bits, and its
 * level had to be lowered to keep the time) (bench/RESULTS.md).
 */
export function targetDictionaryOf(targetVotes: Int32Array | undefined, start: number): Extent[] {
  const v = targetVotes;
  if (!v || v.length === 0) return [];
  // Pairs come most voted first; the dictionary takes them in ascending block order.
  const blocks: number[] = [];
  for (let i = 0; i < v.length && blocks.length < LIMITS.MAX_TARGET_DICTIONARY_BLOCKS; i += 2) if (v[i]! < start) blocks.push(v[i]!);
  blocks.sort((x, y) => x - y);
  return toExtents(blocks);
}

/** Ascending block numbers as extents, consecutive ones merged. */
export function toExtents(blocks: readonly number[]): Extent[] {
  const extents: Extent[] = [];
  for (const b of blocks) {
    const last = extents[extents.length - 1];
    if (last && last.startBlock + last.blockCount === b) last.blockCount++;
    else extents.push({ startBlock: b, blockCount: 1 });
  }
  return extents;
}
