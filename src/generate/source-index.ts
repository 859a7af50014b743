/**
 * The generator's view of the source image, built in one pass over it: every block's SHA-256 in
 * the WASM block index (target blocks found anywhere in the source become copies), and the
 * content-defined anchors of the source in the WASM fingerprint index (where the diff encoder looks
 * for data similar to changed blocks).
 *
 * Memory, sized once from the source size before the pass: 32 bytes of digest + 8 of block table per
 * source block, and 12 bytes per anchor slot: 8 anchors per block at 70% load, rounded up to a power
 * of two, 11-23 slots. In all 180-320 bytes per 4 KiB block, 4-8% of the source (464 MiB for
 * 8 GiB; README.md, "Memory").
 */
import { BLOCK_SIZE, DIGEST_SIZE } from '../format/constants.js';
import { readWindows, type OpenImage } from '../io/device.js';
import type { DeltaCore } from '../wasm/delta.js';
import { BlockListHasher, type WasmCore } from '../wasm/core.js';

/** One anchor per 512 bytes on average (assembly/delta/anchors.ts), with room for a dense source. */
const ANCHOR_SPACING = 512;

export class SourceIndex {
  readonly blocks: number;
  /** Block-list hash of the source image, as the manifest records it. */
  hash: Uint8Array = new Uint8Array(DIGEST_SIZE);
  /** Digest of the last block zero-padded to BLOCK_SIZE, if the source ends inside a block. */
  private paddedLast: Uint8Array | undefined;
  private readonly digests: number;
  private readonly table: number;
  private readonly tableMask: number;
  /** The source's fingerprint index (diff-op.ts, votesOf). */
  readonly anchorIndex: AnchorIndex;
  private readonly scratch: number;

  private constructor(private readonly delta: DeltaCore, private readonly core: WasmCore, readonly size: number) {
    this.blocks = Math.ceil(size / BLOCK_SIZE);
    const tableSlots = pow2AtLeast(this.blocks * 2);
    this.tableMask = tableSlots - 1;
    this.digests = delta.alloc(this.blocks * DIGEST_SIZE);
    this.table = delta.alloc(tableSlots * 4);
    this.anchorIndex = new AnchorIndex(delta, size);
    this.scratch = delta.alloc(core.windowSize + (core.windowSize / BLOCK_SIZE));
    // Fresh WASM memory is zero: the tables start empty.
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
      index.add(pos, window.subarray(0, n), digests.subarray(0, blocks * DIGEST_SIZE), flags.subarray(0, blocks));
      onRead?.(pos + n);
    }
    index.hash = root.digest();
    return index;
  }

  private add(pos: number, data: Uint8Array, digests: Uint8Array, skip: Uint8Array): void {
    const first = pos / BLOCK_SIZE;
    const mem = this.delta.bytes();
    mem.set(digests, this.digests + first * DIGEST_SIZE);
    mem.set(data, this.scratch);
    mem.set(skip, this.scratch + this.core.windowSize);
    const x = this.delta.exports;
    x.blockIndexAdd(this.digests, first, skip.length, this.scratch + this.core.windowSize, this.table, this.tableMask);
    this.anchorIndex.addAt(this.scratch, data.length, pos);
  }

  /**
   * For `zero.length` target blocks from target block `first`, with their digests and zero flags,
   * fills `out` with the source block holding the same bytes, or -1. `previous` is the match of
   * block first - 1, so that runs continue across calls. Returns how many matched.
   */
  match(first: number, digests: Uint8Array, zero: Uint8Array, out: Int32Array, previous: number): number {
    const start = this.delta.mark();
    try {
      const d = this.delta.put(digests);
      const z = this.delta.put(zero);
      const o = this.delta.alloc(zero.length * 4);
      const matched = this.delta.exports.blockIndexMatch(this.digests, this.blocks, this.table, this.tableMask, d, first, zero.length, z, o, previous);
      out.set(new Int32Array(this.delta.bytes().buffer, o, zero.length));
      return matched;
    } finally {
      this.delta.reset(start);
    }
  }

  /** Block-list hash of source blocks read as `extents` (a short last block counts zero-padded). */
  extentsHash(extents: readonly { startBlock: number; blockCount: number }[]): Uint8Array {
    const hasher = this.core.sha256();
    const mem = this.delta.bytes();
    for (const e of extents) {
      for (let b = e.startBlock; b < e.startBlock + e.blockCount; b++) {
        if (b === this.blocks - 1 && this.paddedLast) hasher.update(this.paddedLast);
        else hasher.update(mem.subarray(this.digests + b * DIGEST_SIZE, this.digests + (b + 1) * DIGEST_SIZE));
      }
    }
    return hasher.digest();
  }

}

/**
 * The fingerprint index of one image in a delta module's memory: content-defined anchors and the
 * image offset where each first occurs (a later occurrence of the same anchor keeps the first).
 * The source's tells the diff encoder where old data resembles a range; the target's, which
 * earlier parts of the new image do (for a SOURCE_ZSTD's target dictionary).
 */
export class AnchorIndex {
  private readonly keys: number;
  private readonly positions: number;
  private readonly mask: number;
  private readonly limit: number;
  count = 0;

  constructor(private readonly delta: DeltaCore, size: number) {
    this.limit = Math.ceil(size / ANCHOR_SPACING) + 64;
    const slots = pow2AtLeast(Math.ceil(this.limit / 0.7));
    this.mask = slots - 1;
    this.keys = delta.alloc(slots * 4);
    this.positions = delta.alloc(slots * 8);
  }

  /** Indexes `length` bytes at `at` in the module's memory, which sit at image offset `pos`. */
  addAt(at: number, length: number, pos: number): void {
    this.count = this.delta.exports.anchorIndexAdd(at, length, pos, this.keys, this.positions, this.mask, this.count, this.limit);
  }

  /** Indexes `data`, the image's bytes at offset `pos`. */
  add(data: Uint8Array, pos: number): void {
    const mark = this.delta.mark();
    try {
      this.addAt(this.delta.put(data), data.length, pos);
    } finally {
      this.delta.reset(mark);
    }
  }

  /** Votes of `t`'s anchors for the indexed image's blocks below `limit` (anchorVotes). */
  votes(t: Uint8Array, limit: number): Map<number, number> {
    return anchorVotes(this.delta, { keys: this.keys, positions: this.positions, mask: this.mask }, t, limit);
  }
}

function pow2AtLeast(n: number): number {
  let p = 1024;
  while (p < n) p *= 2;
  return p;
}

/** Where a fingerprint index's tables sit in a delta module's memory. */
interface AnchorTablesAt {
  keys: number;
  positions: number;
  mask: number;
}

/**
 * Votes of the anchor hits of `t` (a piece of the target) in an index for the blocks of the
 * indexed image below `limit`: the block holding each hit and its neighbours, compared along the
 * hit's diagonal (2 for the hit's own block, 1 for each neighbour).
 */
function anchorVotes(delta: DeltaCore, anchors: AnchorTablesAt, t: Uint8Array, limit: number): Map<number, number> {
  const votes = new Map<number, number>();
  const vote = (block: number, weight: number) => {
    if (block >= 0 && block < limit) votes.set(block, (votes.get(block) ?? 0) + weight);
  };
  const mark = delta.mark();
  try {
    const data = delta.put(t);
    const maxHits = Math.ceil(t.length / 64) + 16;
    const out = delta.alloc(maxHits * 16);
    const hits = delta.exports.anchorIndexHits(data, t.length, anchors.keys, anchors.positions, anchors.mask, out, maxHits);
    const view = new DataView(delta.bytes().buffer, out, hits * 16);
    for (let h = 0; h < hits; h++) {
      const offset = view.getUint32(h * 16, true);
      const position = view.getUint32(h * 16 + 8, true) + view.getUint32(h * 16 + 12, true) * 2 ** 32;
      const tb = Math.floor(offset / BLOCK_SIZE);
      for (let k = -1; k <= 1; k++) {
        const tStart = (tb + k) * BLOCK_SIZE;
        if (tStart < 0 || tStart >= t.length) continue;
        const sStart = position - offset + tStart;
        const weight = k === 0 ? 2 : 1;
        vote(Math.floor(sStart / BLOCK_SIZE), weight);
        if (sStart % BLOCK_SIZE !== 0) vote(Math.floor(sStart / BLOCK_SIZE) + 1, weight);
      }
    }
  } finally {
    delta.reset(mark);
  }
  return votes;
}
