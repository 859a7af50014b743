/**
 * The generator's view of the source image, built in one pass over it: every block's SHA-256 in
 * the WASM block index (target blocks found anywhere in the source become copies), and the
 * content-defined anchors of the source in the WASM fingerprint index (where the diff encoder looks
 * for data similar to changed blocks). The indexes and their memory: wasm/indexes.ts.
 */
import { BLOCK_SIZE, DIGEST_SIZE } from '../format/constants.js';
import { readWindows, type OpenImage } from '../io/device.js';
import type { DeltaCore } from '../wasm/delta.js';
import { BlockListHasher } from '../wasm/block-list.js';
import type { WasmCore } from '../wasm/core.js';
import { AnchorIndex, BlockIndex } from '../wasm/indexes.js';
import { DIFF_OP_BLOCKS } from './delta-plan.js';

/** Module memory a fingerprint index's passes need beyond its tables: a window, or a diff range and its hits. */
export function scratchFor(core: WasmCore): number {
  return Math.max(AnchorIndex.scratchBytes(core.windowSize) + core.windowSize / BLOCK_SIZE + 16, AnchorIndex.scratchBytes(DIFF_OP_BLOCKS * BLOCK_SIZE));
}

export class SourceIndex {
  readonly blocks: number;
  /** Block-list hash of the source image, as the manifest records it. */
  hash: Uint8Array = new Uint8Array(DIGEST_SIZE);
  /** Digest of the last block zero-padded to BLOCK_SIZE, if the source ends inside a block. */
  private paddedLast: Uint8Array | undefined;
  private readonly blockIndex: BlockIndex;
  /** The source's fingerprint index (diff-votes.ts, votesOf). */
  readonly anchorIndex: AnchorIndex;
  /** The delta module's memory once the index was set up: its passes grow it no further. */
  readonly setupBytes: number;

  private constructor(delta: DeltaCore, private readonly core: WasmCore, readonly size: number) {
    this.blocks = Math.ceil(size / BLOCK_SIZE);
    this.blockIndex = new BlockIndex(delta, this.blocks);
    this.anchorIndex = new AnchorIndex(delta, size);
    // Sized now, not mid-run: the largest transient need is a window being indexed (with its
    // blocks' skip flags) or a range's anchors being looked up (scratchFor).
    delta.reserve(scratchFor(core));
    this.setupBytes = delta.memoryBytes;
  }

  /** Reads the whole source once and indexes it. `onRead` gets the bytes read so far. */
  static async build(delta: DeltaCore, core: WasmCore, source: OpenImage, onRead?: (bytes: number) => void): Promise<SourceIndex> {
    const index = new SourceIndex(delta, core, source.size);
    const digests = new Uint8Array((core.windowSize / BLOCK_SIZE) * DIGEST_SIZE);
    const flags = new Uint8Array(core.windowSize / BLOCK_SIZE);
    const root = new BlockListHasher(core);
    for await (const { pos, data: window } of readWindows(source, core.windowSize)) {
      const n = window.length;
      const blocks = core.blockDigestsInto(window, digests);
      core.zeroBlockFlagsInto(window, flags);
      root.updateDigests(digests.subarray(0, blocks * DIGEST_SIZE));
      if (n % BLOCK_SIZE !== 0) {
        // A short last block cannot equal a full target block, and operations read it padded.
        flags[blocks - 1] = 1;
        const padded = new Uint8Array(BLOCK_SIZE);
        padded.set(window.subarray((blocks - 1) * BLOCK_SIZE, n));
        index.paddedLast = new Uint8Array(DIGEST_SIZE);
        core.blockDigestsInto(padded, index.paddedLast);
      }
      index.blockIndex.add(pos / BLOCK_SIZE, digests.subarray(0, blocks * DIGEST_SIZE), flags.subarray(0, blocks));
      index.anchorIndex.add(window.subarray(0, n), pos);
      onRead?.(pos + n);
    }
    index.hash = root.digest();
    return index;
  }

  /**
   * For `zero.length` target blocks from target block `first`, with their digests and zero flags,
   * fills `out` with the source block holding the same bytes, or -1. `previous` is the match of
   * block first - 1, so that runs continue across calls. Returns how many matched.
   */
  match(first: number, digests: Uint8Array, zero: Uint8Array, out: Int32Array, previous: number): number {
    return this.blockIndex.match(first, digests, zero, out, previous);
  }

  /** Block-list hash of source blocks read as `extents` (a short last block counts zero-padded). */
  extentsHash(extents: readonly { startBlock: number; blockCount: number }[]): Uint8Array {
    const hasher = this.core.sha256();
    for (const e of extents) {
      for (let b = e.startBlock; b < e.startBlock + e.blockCount; b++) {
        hasher.update(b === this.blocks - 1 && this.paddedLast ? this.paddedLast : this.blockIndex.digest(b));
      }
    }
    return hasher.digest();
  }
}
