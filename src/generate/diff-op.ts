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
 * compresses smallest, manifest bytes included, is kept; incompressible data stays REPLACE. In
 * format 2, zstd with the used source blocks and the earlier target blocks the range's anchors
 * point to (the target's own fingerprint index) as dictionary competes too. The votes, and the
 * blocks chosen from them (steps 1 and 2), are in diff-votes.ts; the compressors (brotli, and zstd
 * with its dictionary) in diff-codecs.ts.
 */
import { BLOCK_SIZE, DIGEST_SIZE, OpType } from '../format/constants.js';
import { encodeControl, encodeDiffBlob, Filter } from '../format/diff.js';
import { blockBytes, type Extent } from '../format/manifest.js';
import { readExtents, readFully, type OpenImage } from '../io/device.js';
import type { DeltaCore, DiffEncoding } from '../wasm/delta.js';
import { DIFF_OP_BLOCKS } from './delta-plan.js';
import { NO_SOURCE, NO_TARGET, pack, zstdCandidates, zstdEncode, type SourceDictionary, type TargetDictionary } from './diff-codecs.js';
import { chooseSourceBlocks, MAX_DIFF_SOURCE_BLOCKS, targetDictionaryOf, toExtents } from './diff-votes.js';
import type { DiffJob, DiffResult } from './diff-job.js';

export { MAX_DIFF_SOURCE_BLOCKS, votesOf } from './diff-votes.js';
export type { DiffJob, DiffResult } from './diff-job.js';

/** Manifest bytes of one extent, and of a hash: what a SOURCE_DIFF costs beyond its data. */
const EXTENT_BYTES = 12;

export interface DiffContext {
  delta: DeltaCore;
  source: OpenImage;
  target: OpenImage;
  quality: number;
  /** Format version of the payload: 2 adds the zstd encodings (SOURCE_ZSTD, REPLACE_ZSTD). */
  formatVersion: number;
  /** zstd level of those encodings. */
  zstdLevel: number;
  /** A young-generation collection (runtime/collect.ts): frees what the job let go before zstd's peak. */
  collect?: () => void;
}

/**
 * Encodes one diff job, one range of at most DIFF_OP_BLOCKS: the source blocks are chosen and the
 * matcher run (analyse), then the smallest encoding kept (encodeAnalysed). One operation per job:
 * a 4 MiB range is a piece of work small enough to keep both cores busy on a 64 MiB image, and
 * with earlier target blocks in zstd's dictionary, longer operations of new data gained little
 * (16 MiB ones: 0.5% of the fresh 512 MiB Debian pair's delta, 0.06% of the in-place one).
 */
export async function encodeDiffJob(ctx: DiffContext, job: DiffJob): Promise<DiffResult[]> {
  if (job.count > DIFF_OP_BLOCKS) throw new RangeError(`a diff job holds at most ${DIFF_OP_BLOCKS} blocks, got ${job.count}`);
  const length = Math.min(job.count * BLOCK_SIZE, ctx.target.size - job.start * BLOCK_SIZE);
  const t = new Uint8Array(length);
  await readFully(ctx.target, t, length, job.start * BLOCK_SIZE);
  const a = await analyse(ctx, t, job.start, job.copies, job.sourceVotes, job.targetVotes);
  return [await encodeAnalysed(ctx, a, job.index)];
}

/** One range, analysed: the source blocks chosen for it, the best diff candidate, the blocks any encoding reads. */
interface Analysis {
  start: number;
  count: number;
  t: Uint8Array;
  /** The used source blocks' bytes, copied out of the chosen ones (a zstd dictionary's). */
  usedBytes: Map<number, Uint8Array>;
  best: Candidate;
  bestCost: number;
  /** The source blocks any diff encoding reads: what the matcher found similar, a zstd dictionary's blocks. */
  used: Set<number>;
  /** Whether the source explains less than half of the range (its extra stream is larger). */
  novel: boolean;
  /** Earlier target blocks the range resembles, with their votes (DiffJob.targetVotes). */
  targetVotes: Int32Array | undefined;
}

async function analyse(ctx: DiffContext, t: Uint8Array, start: number, copies: Int32Array, sourceVotes: Int32Array, targetVotes: Int32Array | undefined): Promise<Analysis> {
  const { delta, source } = ctx;
  const count = copies.length;
  const chosen = chooseSourceBlocks(count, copies, sourceVotes);
  const s = await readExtents(source, toExtents(chosen), BLOCK_SIZE);
  // Candidates, judged by a fast compression of their streams plus their manifest bytes; only the
  // winner is compressed at full quality. Metadata (inode tables, directories) gains from short
  // matches, new code loses from them (chance matches cut its literals apart); new data may do
  // best with no source at all.
  let best: Candidate | undefined;
  let bestCost = Infinity;
  const used = new Set<number>();
  const candidates: Candidate[] = [];
  for (const minMatch of MIN_MATCH_CANDIDATES) {
    const enc = delta.diffEncode(s, t, minMatch);
    if (!enc) continue;
    const candidate = diffCandidate(enc, chosen);
    for (const e of candidate.srcExtents) for (let b = e.startBlock; b < e.startBlock + e.blockCount; b++) used.add(b);
    candidates.push(candidate);
  }
  // New data, whichever candidate wins, goes to zstd (format 2), which needs only the used blocks:
  // judging the candidates would cost brotli on megabytes for nothing (0.45 of the 64 MiB Debian
  // pair's 5.2 CPU-s of jobs).
  if (ctx.formatVersion >= 2 && candidates.every((c) => c.extra.length > NOVEL_SHARE * t.length)) {
    best = plainCandidate(t); // bestCost stays unknown: nothing reads it for new data
  } else {
    for (const candidate of candidates) {
      const cost = candidateCost(delta, candidate);
      if (cost < bestCost) {
        best = candidate;
        bestCost = cost;
      }
    }
    // Without source only wins where the source explains little.
    if (best === undefined || best.extra.length * 2 > t.length) {
      const plain = plainCandidate(t);
      const cost = candidateCost(delta, plain);
      if (best === undefined || cost < bestCost) {
        best = plain;
        bestCost = cost;
      }
    }
  }
  const usedBytes = new Map<number, Uint8Array>();
  chosen.forEach((block, i) => {
    if (used.has(block)) usedBytes.set(block, s.slice(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
  });
  return { start, count, t, usedBytes, best, bestCost, used, novel: best.extra.length > NOVEL_SHARE * t.length, targetVotes };
}

/**
 * The smallest encoding of one analysed range. Where the source explains little (mostly new
 * files), zstd does the work alone: brotli at full quality on megabytes of new data costs more
 * than the rest of the delta together, and loses to zstd with a dictionary there. Elsewhere
 * brotli's diff is encoded, and zstd tried on top where the range still costs ZSTD_WORTH bytes
 * (most ranges are a few copies and metadata changes that the diff encodes in bytes), at a lower
 * level first and again at the full level if zstd wins and the range still costs FULL_LEVEL_WORTH.
 */
async function encodeAnalysed(ctx: DiffContext, a: Analysis, index: number): Promise<DiffResult> {
  const { delta } = ctx;
  const { t, best } = a;
  const zstd = ctx.formatVersion >= 2;
  let result: DiffResult = { index, start: a.start, count: a.count, type: OpType.REPLACE, blob: t.slice(), srcExtents: [], diffBytes: 0, extraBytes: 0 };
  const keep = (r: Omit<DiffResult, 'index' | 'start' | 'count'>) => {
    if (costOf(r) < costOf(result)) result = { ...r, index, start: a.start, count: a.count };
  };
  const brotli = () => {
    const q = (data: Uint8Array) => (data.length <= SMALL_STREAM ? SMALL_STREAM_QUALITY : ctx.quality);
    const extra = best.x86 ? { ...pack(delta.x86Filter(best.extra, 'encode'), q(best.extra)), filter: Filter.X86 } : pack(best.extra, q(best.extra));
    const blob = encodeDiffBlob([pack(best.control, q(best.control)), pack(best.diff, q(best.diff)), extra]);
    keep({ type: OpType.SOURCE_DIFF, blob, srcExtents: best.srcExtents, diffBytes: best.diff.length, extraBytes: best.extra.length });
  };
  if (!zstd || (!a.novel && a.bestCost < ZSTD_WORTH)) {
    brotli();
    return result;
  }
  const level = a.novel ? ctx.zstdLevel : Math.min(ctx.zstdLevel, ZSTD_LEVEL_ON_DIFF);
  // The source blocks, then the target blocks, in one buffer: zstd takes either part or both as
  // they are (joining them cost up to 32 MiB more per worker at the memory peak).
  const sourceBlocks = [...a.usedBytes.keys()].sort((x, y) => x - y);
  const sourceBytes = sourceBlocks.length > MAX_DIFF_SOURCE_BLOCKS ? 0 : sourceBlocks.length * BLOCK_SIZE;
  const targetExtents = targetDictionaryOf(a.targetVotes, a.start);
  const dictionaries = new Uint8Array(sourceBytes + blockBytes(targetExtents));
  const source = dictionaryOf(a, sourceBlocks, dictionaries.subarray(0, sourceBytes));
  const target: TargetDictionary = { extents: targetExtents, bytes: await readExtents(ctx.target, targetExtents, BLOCK_SIZE, () => dictionaries.subarray(sourceBytes)) };
  // zstd's tables and its copy of the dictionary are the worker's peak: the matcher's source
  // buffer and the used blocks' copies (now in the dictionary) are freed first. With the collection
  // after each job, the 512 MiB pairs' peak went from 510-515 to 468-474 MiB.
  a.usedBytes.clear();
  ctx.collect?.();
  const plain = a.used.size * 4 < a.count;
  for (const z of zstdCandidates(level, t, source, target, plain, !a.novel)) keep(z);
  // brotli's diff at full quality, unless zstd already beat what it can reach: its final size was
  // at least 0.68 of the fast estimate on every range of the 512 MiB in-place pair (median 0.83),
  // and those qualities (9, 11 on small streams) took a third of the delta's CPU there.
  if (!a.novel && costOf(result) > BROTLI_FLOOR * a.bestCost) brotli();
  // The winner again at the full level, where it still costs much: level 12 gave away 12% of the
  // 64 MiB Debian pair's largest range (865 against 763 KB), at a fraction of the CPU.
  if (level < ctx.zstdLevel && costOf(result) >= FULL_LEVEL_WORTH && (result.type === OpType.SOURCE_ZSTD || result.type === OpType.REPLACE_ZSTD)) {
    const again = zstdEncode(ctx.zstdLevel, t, result.type === OpType.SOURCE_ZSTD ? source : NO_SOURCE, result.targetDictionary ? target : NO_TARGET);
    if (again) keep(again);
  }
  return result;
}

/**
 * The source blocks the range's matcher runs read (`blocks`, ascending) and their bytes one after
 * another in `into`: a zstd dictionary. Empty `into` when they are more than an operation may read.
 */
function dictionaryOf(a: Analysis, blocks: number[], into: Uint8Array): SourceDictionary {
  if (blocks.length > MAX_DIFF_SOURCE_BLOCKS) return { blocks, bytes: into };
  blocks.forEach((block, i) => into.set(a.usedBytes.get(block)!, i * BLOCK_SIZE));
  return { blocks, bytes: into };
}

/** A range whose extra stream (bytes the source does not explain) exceeds this share of it is "new data": zstd alone. */
const NOVEL_SHARE = 0.5;
/**
 * zstd level where brotli's diff is encoded too: zstd rarely wins there, and level 19's matcher
 * over a dictionary as large as the range costs seconds per range. The ranges where zstd wins
 * and still costs much are encoded again at the full level (FULL_LEVEL_WORTH): on the 64 MiB
 * Debian pair, 2,086,495 B in 6.1 CPU-s, against 2,081,460 B in 11.4 CPU-s with level 19 on every
 * such range and 2,204,769 B with 12 only (bench/RESULTS.md).
 */
const ZSTD_LEVEL_ON_DIFF = 12;

/** A range whose brotli encoding is estimated (PROXY_QUALITY) below this is not tried with zstd (see above). */
const ZSTD_WORTH = 4096;
/** Below this share of brotli's estimate, zstd's encoding is kept without brotli's final encoding (encodeAnalysed). */
const BROTLI_FLOOR = 0.65;

/** Manifest bytes an operation's source costs: its hash and extents. */
function manifestBytes(extents: readonly Extent[]): number {
  return extents.length > 0 ? DIGEST_SIZE + EXTENT_BYTES * extents.length : 0;
}

/** Payload bytes of an encoding: its data, and what its source and target dictionary add to the manifest. */
function costOf(r: Pick<DiffResult, 'blob' | 'srcExtents' | 'targetDictionary'>): number {
  return r.blob.length + manifestBytes(r.srcExtents) + manifestBytes(r.targetDictionary ?? []);
}

/** A range whose zstd encoding at ZSTD_LEVEL_ON_DIFF still costs this much is encoded again at the full level. */
const FULL_LEVEL_WORTH = 64 * 1024;

/** Shortest exact matches the encoder may switch to, tried per range (assembly/delta/encode.ts). */
const MIN_MATCH_CANDIDATES = [8, 32];
/**
 * Streams up to this size get brotli's best quality: its optimal parsing gains 5-10% over the
 * default quality but runs at ~0.3-1.3 MB/s, affordable on the many small streams (controls,
 * metadata changes), not on megabytes of new binaries (bench/RESULTS.md, "Delta codec"). 64 KiB,
 * not 256: the streams between took 0.6 of the 64 MiB Debian pair's 5 CPU-s for 450 bytes, and
 * 13% of the 512 MiB pairs' CPU for 0.16-0.24% of their deltas.
 */
const SMALL_STREAM = 64 * 1024;
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
