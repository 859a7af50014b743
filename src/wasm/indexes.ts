/**
 * Typed wrappers of the delta module's two index kernels (assembly/delta/): the block index (every
 * source block's SHA-256, looked up by a target block's) and the fingerprint index (content-defined
 * anchors of an image and where each first occurs). Their tables live in the module's memory at
 * offsets only this file and delta.ts see; callers pass and get plain arrays and numbers.
 *
 * Memory, sized once when an index is made: 32 bytes of digest + 8 of block table per block, and
 * 12 bytes per anchor slot: 8 anchors per block at 70% load, rounded up to a power of two, 11-23
 * slots. In all 180-320 bytes per 4 KiB block (README.md, "Memory").
 */
import { BLOCK_SIZE, DIGEST_SIZE } from '../block.js';
import type { DeltaCore } from './delta.js';

/** One anchor per 512 bytes on average (assembly/delta/anchors.ts), with room for a dense image. */
const ANCHOR_SPACING = 512;

function pow2AtLeast(n: number): number {
  let p = 1024;
  while (p < n) p *= 2;
  return p;
}

/** The SHA-256 of every block of an image of `blocks` blocks, indexed by content. */
export class BlockIndex {
  private readonly digests: number;
  private readonly table: number;
  private readonly tableMask: number;

  constructor(private readonly delta: DeltaCore, readonly blocks: number) {
    const tableSlots = pow2AtLeast(blocks * 2);
    this.tableMask = tableSlots - 1;
    this.digests = delta.alloc(blocks * DIGEST_SIZE);
    this.table = delta.alloc(tableSlots * 4);
    // Fresh WASM memory is zero: the table starts empty.
  }

  /**
   * Adds blocks `first` .. `first + skip.length - 1` with their `digests`; a block whose `skip`
   * flag is set (all zero, or a short last block) is kept for extentDigests but never matched.
   */
  add(first: number, digests: Uint8Array, skip: Uint8Array): void {
    if (first < 0 || first + skip.length > this.blocks || digests.length !== skip.length * DIGEST_SIZE) {
      throw new RangeError(`blocks ${first}+${skip.length} (${digests.length} digest bytes) do not fit an index of ${this.blocks} blocks`);
    }
    const mark = this.delta.mark();
    try {
      this.delta.bytes().set(digests, this.digests + first * DIGEST_SIZE);
      const flags = this.delta.put(skip);
      this.delta.exports.blockIndexAdd(this.digests, first, skip.length, flags, this.table, this.tableMask);
    } finally {
      this.delta.reset(mark);
    }
  }

  /**
   * For `zero.length` target blocks from target block `first`, with their digests and zero flags,
   * fills `out` with the indexed block holding the same bytes, or -1. `previous` is the match of
   * block first - 1, so that runs continue across calls. Returns how many matched.
   */
  match(first: number, digests: Uint8Array, zero: Uint8Array, out: Int32Array, previous: number): number {
    if (digests.length !== zero.length * DIGEST_SIZE || out.length < zero.length) throw new RangeError('match: digests, flags and out disagree in length');
    const mark = this.delta.mark();
    try {
      const d = this.delta.put(digests);
      const z = this.delta.put(zero);
      const o = this.delta.alloc(zero.length * 4);
      const matched = this.delta.exports.blockIndexMatch(this.digests, this.blocks, this.table, this.tableMask, d, first, zero.length, z, o, previous);
      out.set(new Int32Array(this.delta.bytes().buffer, o, zero.length));
      return matched;
    } finally {
      this.delta.reset(mark);
    }
  }

  /** The digest of block `block`, copied out. */
  digest(block: number): Uint8Array {
    if (!(block >= 0 && block < this.blocks)) throw new RangeError(`block ${block} is outside an index of ${this.blocks} blocks`);
    const at = this.digests + block * DIGEST_SIZE;
    return this.delta.bytes().slice(at, at + DIGEST_SIZE);
  }
}

/**
 * The fingerprint index of one image: content-defined anchors and the image offset where each
 * first occurs (a later occurrence of the same anchor keeps the first). The source's tells the
 * diff encoder where old data resembles a range; the target's, which earlier parts of the new
 * image do (for a SOURCE_ZSTD's target dictionary).
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

  /**
   * Module memory add(data) or votes(data) needs beyond the tables for `length` bytes of data: the
   * data itself, and for votes room for its anchor hits (at most one per 64 bytes, 16 bytes each).
   */
  static scratchBytes(length: number): number {
    const round = (n: number) => Math.ceil(n / 16) * 16;
    return round(length) + round((Math.ceil(length / 64) + 16) * 16);
  }

  /** Indexes `data`, the image's bytes at offset `pos`. */
  add(data: Uint8Array, pos: number): void {
    const mark = this.delta.mark();
    try {
      const at = this.delta.put(data);
      this.count = this.delta.exports.anchorIndexAdd(at, data.length, pos, this.keys, this.positions, this.mask, this.count, this.limit);
    } finally {
      this.delta.reset(mark);
    }
  }

  /**
   * Votes of the anchor hits of `t` (a piece of the target) for the blocks of the indexed image
   * below `limit`: the block holding each hit and its neighbours, compared along the hit's
   * diagonal (2 for the hit's own block, 1 for each neighbour).
   */
  votes(t: Uint8Array, limit: number): Map<number, number> {
    const votes = new Map<number, number>();
    const vote = (block: number, weight: number) => {
      if (block >= 0 && block < limit) votes.set(block, (votes.get(block) ?? 0) + weight);
    };
    for (const { offset, position } of this.hits(t)) {
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
    return votes;
  }

  /** The anchors of `t` found in the index: where in `t`, and where in the indexed image. */
  private hits(t: Uint8Array): { offset: number; position: number }[] {
    const mark = this.delta.mark();
    try {
      const data = this.delta.put(t);
      const maxHits = Math.ceil(t.length / 64) + 16; // as scratchBytes counts
      const out = this.delta.alloc(maxHits * 16);
      const hits = this.delta.exports.anchorIndexHits(data, t.length, this.keys, this.positions, this.mask, out, maxHits);
      const view = new DataView(this.delta.bytes().buffer, out, hits * 16);
      return Array.from({ length: hits }, (_, h) => ({
        offset: view.getUint32(h * 16, true),
        position: view.getUint32(h * 16 + 8, true) + view.getUint32(h * 16 + 12, true) * 2 ** 32,
      }));
    } finally {
      this.delta.reset(mark);
    }
  }
}
