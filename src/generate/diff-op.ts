/**
 * Encodes one diff range of the target (docs/FORMAT.md, "SOURCE_DIFF"), in a diff worker:
 *
 *  1. look up the target range's anchors in the source fingerprint index: each hit says "these
 *     target bytes also sit at that source offset", and votes for the source blocks that the
 *     surrounding target blocks would be compared against;
 *  2. read the blocks the block index already matched (exact copies) and the most voted ones, up to
 *     a budget, as one source buffer S;
 *  3. run the WASM diff encoder of the target range against S;
 *  4. keep only the source blocks the encoding reads, so the operation's source extents (and what
 *     the device reads and checks) are no larger than needed, and compress the streams.
 *
 * Several encodings are tried (different shortest matches, and no source at all) and the one that
 * compresses smallest, manifest bytes included, is kept; incompressible data stays REPLACE.
 */
import { brotliCompressSync, constants as zc, zstdCompressSync } from 'node:zlib';
import { BLOCK_SIZE, DIGEST_SIZE, LIMITS, OpType, ZSTD_DICTIONARY_MAGIC } from '../format/constants.js';
import { Codec, encodeControl, encodeDiffBlob, Filter, type DiffStream } from '../format/diff.js';
import type { Extent } from '../format/manifest.js';
import { readExtents, readFully, type OpenImage } from '../io/device.js';
import type { DeltaCore, DiffEncoding } from '../wasm/delta.js';
import type { AnchorTables } from './source-index.js';

/** Source blocks one diff may read: the format's limit on an operation's source. */
export const MAX_DIFF_SOURCE_BLOCKS = LIMITS.MAX_OP_SOURCE / BLOCK_SIZE;
/** Extra source blocks per target block that the votes may bring in, beyond exact copies. */
const SOURCE_PER_TARGET = 3;
/** Manifest bytes of one extent, and of a hash: what a SOURCE_DIFF costs beyond its data. */
const EXTENT_BYTES = 12;

export interface DiffJob {
  index: number;
  start: number;
  count: number;
  /** Per target block of the range: the source block with the same bytes, or -1. */
  copies: Int32Array;
}

export interface DiffResult {
  index: number;
  type: number;
  blob: Uint8Array;
  srcExtents: Extent[];
  /** Bytes of the three streams before compression (for reports). */
  diffBytes: number;
  extraBytes: number;
}

export interface DiffContext {
  delta: DeltaCore;
  source: OpenImage;
  target: OpenImage;
  /** Offsets of the fingerprint tables inside `delta`. */
  anchors: { keys: number; positions: number; mask: number };
  quality: number;
  /** Format version of the payload: 2 adds the zstd encodings (SOURCE_ZSTD, REPLACE_ZSTD). */
  formatVersion: number;
  /** zstd level of those encodings. */
  zstdLevel: number;
}

/** Copies the fingerprint tables into the worker's delta module. */
export function loadAnchors(delta: DeltaCore, tables: AnchorTables, loaded?: () => void): DiffContext['anchors'] {
  const anchors = { keys: delta.put(tables.keys), positions: delta.put(tables.positions), mask: tables.mask };
  loaded?.();
  return anchors;
}

export async function encodeDiffOperation(ctx: DiffContext, job: DiffJob): Promise<DiffResult> {
  const { delta, source, target } = ctx;
  const length = Math.min(job.count * BLOCK_SIZE, target.size - job.start * BLOCK_SIZE);
  const t = new Uint8Array(length);
  await readFully(target, t, length, job.start * BLOCK_SIZE);

  const chosen = chooseSourceBlocks(ctx, t, job);
  const s = await readExtents(source, toExtents(chosen), BLOCK_SIZE);

  // Candidates, judged by a fast compression of their streams plus their manifest bytes; only the
  // winner is compressed at full quality. Metadata (inode tables, directories) gains from short
  // matches, new code loses from them (chance matches cut its literals apart); new data may do
  // best with no source at all.
  let best: Candidate | undefined;
  let bestCost = Infinity;
  // The source blocks any encoding reads: what the matcher found similar, a zstd dictionary's blocks.
  const dictionaryBlocks = new Set<number>();
  for (const minMatch of MIN_MATCH_CANDIDATES) {
    const enc = delta.diffEncode(s, t, minMatch);
    if (!enc) continue;
    const candidate = diffCandidate(enc, chosen);
    for (const e of candidate.srcExtents) for (let b = e.startBlock; b < e.startBlock + e.blockCount; b++) dictionaryBlocks.add(b);
    const cost = candidateCost(delta, candidate);
    if (cost < bestCost) {
      best = candidate;
      bestCost = cost;
    }
  }
  // Without source only wins where the source explains little.
  if (best === undefined || best.extra.length * 2 > t.length) {
    const plain = plainCandidate(t);
    if (best === undefined || candidateCost(delta, plain) < bestCost) best = plain;
  }
  const q = (data: Uint8Array) => (data.length <= SMALL_STREAM ? SMALL_STREAM_QUALITY : ctx.quality);
  const extra = best.x86 ? { ...pack(delta.x86Filter(best.extra, 'encode'), q(best.extra)), filter: Filter.X86 } : pack(best.extra, q(best.extra));
  const blob = encodeDiffBlob([pack(best.control, q(best.control)), pack(best.diff, q(best.diff)), extra]);
  let result: DiffResult = { index: job.index, type: OpType.SOURCE_DIFF, blob, srcExtents: best.srcExtents, diffBytes: best.diff.length, extraBytes: best.extra.length };
  if (blob.length >= length) result = { index: job.index, type: OpType.REPLACE, blob: t, srcExtents: [], diffBytes: 0, extraBytes: 0 };
  if (ctx.formatVersion >= 2) {
    for (const z of zstdCandidates(ctx, t, s, chosen, dictionaryBlocks)) {
      if (z.blob.length + manifestBytes(z.srcExtents) < result.blob.length + manifestBytes(result.srcExtents)) result = { ...z, index: job.index };
    }
  }
  return result;
}

/** Manifest bytes an operation's source costs: its hash and extents. */
function manifestBytes(extents: readonly Extent[]): number {
  return extents.length > 0 ? DIGEST_SIZE + EXTENT_BYTES * extents.length : 0;
}

/**
 * The zstd encodings of a range: the range alone (REPLACE_ZSTD), and the range with source blocks
 * as zstd's raw-content dictionary (SOURCE_ZSTD: zstd's --patch-from, per operation). The
 * dictionary is the blocks the WASM matcher found similar, in source order.
 */
function zstdCandidates(ctx: DiffContext, t: Uint8Array, s: Uint8Array, chosen: readonly number[], used: ReadonlySet<number>): Omit<DiffResult, 'index'>[] {
  const params = { [zc.ZSTD_c_compressionLevel]: ctx.zstdLevel, [zc.ZSTD_c_contentSizeFlag]: 1, [zc.ZSTD_c_checksumFlag]: 0 };
  const out: Omit<DiffResult, 'index'>[] = [];
  out.push({ type: OpType.REPLACE_ZSTD, blob: transferable(zstdCompressSync(t, { params })), srcExtents: [], diffBytes: 0, extraBytes: 0 });
  const blocks = chosen.filter((b) => used.has(b));
  if (blocks.length === 0) return out;
  const dictionary = new Uint8Array(blocks.length * BLOCK_SIZE);
  let at = 0;
  for (let i = 0; i < chosen.length; i++) {
    if (!used.has(chosen[i]!)) continue;
    dictionary.set(s.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE), at);
    at += BLOCK_SIZE;
  }
  if (ZSTD_DICTIONARY_MAGIC.every((b, i) => dictionary[i] === b)) return out;
  const windowLog = Math.max(10, Math.ceil(Math.log2(dictionary.length + t.length)));
  const blob = transferable(zstdCompressSync(t, { params: { ...params, [zc.ZSTD_c_windowLog]: Math.min(windowLog, 27) }, dictionary }));
  out.push({ type: OpType.SOURCE_ZSTD, blob, srcExtents: toExtents(blocks), diffBytes: 0, extraBytes: 0 });
  return out;
}

/** A copy in memory of its own: zlib's sync results may not be transferable to the main thread. */
function transferable(data: Uint8Array): Uint8Array {
  return Uint8Array.from(data);
}

/** Shortest exact matches the encoder may switch to, tried per range (assembly/delta/encode.ts). */
const MIN_MATCH_CANDIDATES = [8, 32];
/**
 * Streams up to this size get brotli's best quality: its optimal parsing gains 5-10% over the
 * default quality but runs at ~0.3 MB/s, affordable on the many small streams (controls, metadata
 * changes), not on megabytes of new binaries (bench/RESULTS.md, "Delta codec").
 */
const SMALL_STREAM = 256 * 1024;
const SMALL_STREAM_QUALITY = 11;
/** Brotli quality of the comparison between candidates: ~10x faster than the final quality, and it ranks them as well as 5 did (64 MiB and 512 MiB Debian pairs). */
const PROXY_QUALITY = 3;

/** One way to encode a range: its three raw streams and the source extents it reads. */
interface Candidate {
  control: Uint8Array;
  diff: Uint8Array;
  extra: Uint8Array;
  srcExtents: Extent[];
  /** Whether the extra stream compresses better through the x86 branch filter (set by candidateCost). */
  x86?: boolean;
}

/** The range as a diff without source: all of it one extra stream. */
function plainCandidate(t: Uint8Array): Candidate {
  return { control: encodeControl(Uint32Array.of(0, t.length, 0)), diff: new Uint8Array(0), extra: t, srcExtents: [] };
}

/**
 * An encoding against S = the `chosen` source blocks. Only the blocks it reads become source
 * extents (so the device reads and checks no more than needed); control positions are renumbered
 * to the kept blocks.
 */
function diffCandidate(enc: DiffEncoding, chosen: readonly number[]): Candidate {
  const used = new Uint8Array(chosen.length);
  const e = enc.entries;
  for (let i = 0; i < e.length; i += 3) {
    const n = e[i]!;
    if (n === 0) continue;
    const last = Math.floor((e[i + 2]! + n - 1) / BLOCK_SIZE);
    for (let b = Math.floor(e[i + 2]! / BLOCK_SIZE); b <= last; b++) used[b] = 1;
  }
  const newIndex = new Int32Array(chosen.length);
  const kept: number[] = [];
  for (let b = 0; b < chosen.length; b++) {
    newIndex[b] = kept.length;
    if (used[b]) kept.push(chosen[b]!);
  }
  const control = encodeControl(e, (p) => newIndex[Math.floor(p / BLOCK_SIZE)]! * BLOCK_SIZE + (p % BLOCK_SIZE));
  return { control, diff: enc.diff, extra: enc.extra, srcExtents: toExtents(kept) };
}

/**
 * Estimated payload bytes of a candidate: its streams at PROXY_QUALITY and its manifest extras.
 * Decides on the way whether its extra stream goes through the x86 filter.
 */
function candidateCost(delta: DeltaCore, c: Candidate): number {
  const manifest = c.srcExtents.length > 0 ? DIGEST_SIZE + EXTENT_BYTES * c.srcExtents.length : 0;
  const plainExtra = pack(c.extra, PROXY_QUALITY).data.length;
  const filteredExtra = c.extra.length > 0 ? pack(delta.x86Filter(c.extra, 'encode'), PROXY_QUALITY).data.length : Infinity;
  c.x86 = filteredExtra < plainExtra;
  return manifest + pack(c.control, PROXY_QUALITY).data.length + pack(c.diff, PROXY_QUALITY).data.length + Math.min(plainExtra, filteredExtra);
}

/**
 * The source blocks S is made of, ascending: every exact copy the block index found in the range,
 * then the blocks most voted for by anchor hits, up to the budget.
 */
function chooseSourceBlocks(ctx: DiffContext, t: Uint8Array, job: DiffJob): number[] {
  const { delta, anchors, source } = ctx;
  const sourceBlocks = Math.ceil(source.size / BLOCK_SIZE);
  const budget = Math.min(MAX_DIFF_SOURCE_BLOCKS, job.count * (1 + SOURCE_PER_TARGET));
  const picked = new Set<number>();
  for (const c of job.copies) if (c >= 0) picked.add(c);

  const votes = new Map<number, number>();
  const vote = (block: number, weight: number) => {
    if (block >= 0 && block < sourceBlocks && !picked.has(block)) votes.set(block, (votes.get(block) ?? 0) + weight);
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
      // The target block holding the hit, and its neighbours, compared along the hit's diagonal.
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
  const ranked = [...votes.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  for (const [block] of ranked) {
    if (picked.size >= budget) break;
    picked.add(block);
  }
  return [...picked].sort((a, b) => a - b);
}

/** Ascending block numbers as extents, consecutive ones merged. */
function toExtents(blocks: readonly number[]): Extent[] {
  const extents: Extent[] = [];
  for (const b of blocks) {
    const last = extents[extents.length - 1];
    if (last && last.startBlock + last.blockCount === b) last.blockCount++;
    else extents.push({ startBlock: b, blockCount: 1 });
  }
  return extents;
}

/** A stream compressed with brotli, or stored if that is not smaller. */
function pack(data: Uint8Array, quality: number): DiffStream {
  if (data.length === 0) return { codec: Codec.STORED, filter: Filter.NONE, rawLength: 0, data };
  const packed = brotliCompressSync(data, {
    params: {
      [zc.BROTLI_PARAM_QUALITY]: quality,
      [zc.BROTLI_PARAM_LGWIN]: 24,
      [zc.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  return packed.length < data.length
    ? { codec: Codec.BROTLI, filter: Filter.NONE, rawLength: data.length, data: packed }
    : { codec: Codec.STORED, filter: Filter.NONE, rawLength: data.length, data };
}
