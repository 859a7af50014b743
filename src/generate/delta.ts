/**
 * Delta payloads: the target image as operations on the source image the device already runs.
 *
 *   pass 1  read the source once: block digests into the WASM block index, anchors into the WASM
 *           fingerprint index, and the source's block-list hash (SourceIndex);
 *   pass 2  read the target once: block digests, zero flags, the image hash, for each block the
 *           source block holding the same bytes, if any, and (format 2) the target's own anchors
 *           in a fingerprint index of the main thread;
 *   plan    cut the target into ZERO, SOURCE_COPY and diff ranges (planDelta);
 *   encode  diff ranges go to worker threads (one delta WASM instance each, both cores), with the
 *           earlier target blocks each 4 MiB of them resembles (by the target's index); they
 *           return SOURCE_DIFF, SOURCE_ZSTD, REPLACE_ZSTD or REPLACE data; operations are written
 *           in target order.
 *
 * Memory: the source's two indexes and the target's fingerprint index (~2.2% of each image), all in
 * the main thread, which computes each job's votes from them; 37 bytes per target block (digest,
 * zero flag, match); and per worker one diff job's buffers (at most 16 MiB of source, 4 MiB of
 * target, their encoder tables and one zstd level-19 compression): README.md, "Memory".
 */
import { FastPatchError } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, FORMAT_VERSION, LIMITS, OpType } from '../format/constants.js';
import { checkReleaseVersion, type Extent, type Manifest, type Operation } from '../format/manifest.js';
import { openImageForRead, readFully, readWindows, writeAllAt, type OpenImage } from '../io/device.js';
import { defaultWorkers, WorkerPool } from '../runtime/worker-pool.js';
import { hex } from '../hex.js';
import { BlockListHasher, blockListHash } from '../wasm/block-list.js';
import { WasmCore, type CoreBuild } from '../wasm/core.js';
import { DeltaCore } from '../wasm/delta.js';
import { zeroBlockListHash } from '../wasm/zero-digests.js';
import { votesOf, type DiffJob, type DiffResult } from './diff-op.js';
import type { DiffWorkerData } from './diff-worker.js';
import { DIFF_OP_BLOCKS, planDelta, type PlannedOp } from './delta-plan.js';
import { codecOf, type GenerateOptions } from './generator.js';
import type { GenerateResult } from './writer.js';
import { scratchFor, SourceIndex } from './source-index.js';
import { AnchorIndex } from '../wasm/indexes.js';
import { discardTemp, type TempFile } from '../io/safe-files.js';
import { createDataTemp, writeAndDescribe } from './writer.js';

/** Brotli quality of the diff streams; see bench/RESULTS.md, "Delta codec". */
export const DEFAULT_DIFF_QUALITY = 9;
/** zstd level of the SOURCE_ZSTD and REPLACE_ZSTD encodings (format version 2). */
export const DEFAULT_DELTA_ZSTD_LEVEL = 19;

export interface DeltaOptions extends Omit<GenerateOptions, 'level' | 'onProgress'> {
  /** The image the device runs now: a regular file or a block device. Only read. */
  source: string;
  /** Release version of the source image, recorded so a device on another release is told which one it needs. */
  sourceVersion?: string;
  /** Brotli quality 1..11 of the diff streams. */
  quality?: number;
  /** zstd level 1..19 of the zstd encodings (format version 2). */
  zstdLevel?: number;
  /** Worker threads for diff ranges (default: one per core, at most 4). */
  workers?: number;
  onProgress?: (progress: DeltaProgress) => void;
}

export interface DeltaProgress {
  phase: 'source' | 'target' | 'encode';
  done: number;
  total: number;
}

export interface DeltaResult extends GenerateResult {
  sourceSize: number;
  sourceHash: string;
  /** Bytes of difference and extra streams before compression, over all SOURCE_DIFF operations. */
  diffBytes: number;
  extraBytes: number;
}

/**
 * Operations dispatched ahead of the one being written. Diff ranges vary a lot in cost (a range of
 * new binaries takes seconds at high brotli quality, a metadata range milliseconds), so a short
 * window would leave a core idle behind one slow range. The window bounds the finished results
 * held for in-order writing: at most this many blobs of at most 4 MiB each (they are compressed).
 */
const DISPATCH_WINDOW = 32;

/**
 * Writes a signed delta payload that turns `source` into `target`. Throws FastPatchError('IO' |
 * 'USAGE') and RangeError/TypeError for bad options.
 */
export async function generateDeltaPayload(options: DeltaOptions): Promise<DeltaResult> {
  const started = performance.now();
  const { quality, formatVersion, zstdLevel } = checkedDeltaSettings(options);
  const build = options.build ?? 'release';
  const core = WasmCore.load(build);
  const force = options.force === true;
  const source = await openImageForRead(options.source);
  let target: OpenImage | undefined;
  let pool: WorkerPool<DiffJob, DiffResult[]> | undefined;
  let data: TempFile | undefined;
  try {
    target = await openImageForRead(options.target);
    // Before reading anything: an existing output (without force) or a missing folder is refused at once.
    data = await createDataTemp(options.out, force);
    for (const [what, image] of [['source', source], ['target', target]] as const) {
      if (image.size === 0 || image.size > LIMITS.MAX_IMAGE_SIZE) throw new FastPatchError('USAGE', `${what} ${image.path}: size ${image.size} is not supported`);
    }
    const progress = options.onProgress ?? (() => {});
    // Started before the two reads: the workers load their modules and WASM on the core the reads
    // leave idle (0.1 s of the 64 MiB pair's 0.5 s before the first range was sent).
    pool = new WorkerPool<DiffJob, DiffResult[]>(
      new URL('./diff-worker.js', import.meta.url),
      { build, sourcePath: options.source, targetPath: options.target, quality, formatVersion, zstdLevel } satisfies DiffWorkerData,
      'diff worker',
      options.workers ?? defaultWorkers(),
    );
    pool.start();
    const delta = new DeltaCore(build);
    const index = await SourceIndex.build(delta, core, source, (done) => progress({ phase: 'source', done, total: source.size }));
    // The target's anchors (format 2: target dictionaries), in a module of the main thread's own,
    // sized now like the source's (scratchFor).
    const targetAnchors = formatVersion >= 2 ? targetAnchorIndex(build, core, target.size) : undefined;
    const scan = await scanTarget(core, index, target, targetAnchors, (done) => progress({ phase: 'target', done, total: target!.size }));
    const plan = planDelta(scan.blocks, scan.zero, scan.match);
    if (plan.length > LIMITS.MAX_OPS) throw new FastPatchError('USAGE', `the delta needs ${plan.length} operations, more than ${LIMITS.MAX_OPS}`);

    const { operations, dataSize, diffBytes, extraBytes } = await encodeOperations(plan, { core, index, scan, target, targetAnchors, pool, data, progress });

    const manifest: Manifest = {
      blockSize: BLOCK_SIZE,
      targetSize: target.size,
      targetHash: scan.hash,
      sourceSize: source.size,
      sourceHash: index.hash,
      version: options.version,
      sourceVersion: options.sourceVersion ?? '',
      operations,
    };
    const result = await writeAndDescribe(options.out, manifest, data.handle, dataSize, options.keys, started, force);
    return { ...result, sourceSize: source.size, sourceHash: hex(index.hash), diffBytes, extraBytes };
  } finally {
    await pool?.close();
    if (data) await discardTemp(data);
    await target?.handle.close();
    await source.handle.close();
  }
}

/** The settings of a delta with their defaults, checked before any file is opened (RangeError, TypeError). */
function checkedDeltaSettings(options: DeltaOptions): { quality: number; formatVersion: number; zstdLevel: number } {
  const quality = options.quality ?? DEFAULT_DIFF_QUALITY;
  if (!Number.isInteger(quality) || quality < 1 || quality > 11) throw new RangeError(`quality: 1..11, got ${quality}`);
  const formatVersion = options.formatVersion ?? FORMAT_VERSION;
  codecOf(formatVersion); // throws RangeError for a version this build does not write
  const zstdLevel = options.zstdLevel ?? DEFAULT_DELTA_ZSTD_LEVEL;
  if (!Number.isInteger(zstdLevel) || zstdLevel < 1 || zstdLevel > 19) throw new RangeError(`zstdLevel: 1..19, got ${zstdLevel}`);
  if (options.keys.length === 0) throw new TypeError('keys: at least one signing key is needed');
  checkReleaseVersion(options.version);
  if (options.sourceVersion !== undefined) checkReleaseVersion(options.sourceVersion);
  return { quality, formatVersion, zstdLevel };
}

/** What the encode phase works from: both passes' results, the diff workers and the payload's data file. */
interface EncodeInputs {
  core: WasmCore;
  index: SourceIndex;
  scan: TargetScan;
  target: OpenImage;
  targetAnchors: AnchorIndex | undefined;
  pool: WorkerPool<DiffJob, DiffResult[]>;
  data: TempFile;
  progress: (progress: DeltaProgress) => void;
}

/** The operations in target order, with their data written to the data file, and the diff streams' sizes. */
interface EncodedOperations {
  operations: Operation[];
  /** Bytes written to the data file. */
  dataSize: number;
  diffBytes: number;
  extraBytes: number;
}

/**
 * The encode phase: builds the plan's operations, diff ranges on the worker threads, up to
 * DISPATCH_WINDOW ahead, and writes their data to the data file in target order.
 */
async function encodeOperations(plan: readonly PlannedOp[], inputs: EncodeInputs): Promise<EncodedOperations> {
  const { core, index, scan, target, targetAnchors, pool, data, progress } = inputs;
  // One range's bytes at a time (oneAtATime), read into one buffer: nothing left per job for the collector.
  const range = new Uint8Array(DIFF_OP_BLOCKS * BLOCK_SIZE);
  const votes = oneAtATime((p: PlannedOp) => votesIn(target, index, targetAnchors, p, range));
  const operations: Operation[] = [];
  const queue: Promise<Built[]>[] = [];
  let dataSize = 0;
  let diffBytes = 0;
  let extraBytes = 0;
  let encoded = 0;
  const diffTotal = plan.filter((p) => p.kind === 'diff').reduce((n, p) => n + p.count, 0);
  const writeOldest = async () => {
    for (const { op, blob, diff } of await queue.shift()!) {
      op.dataOffset = dataSize;
      if (blob) {
        await writeAllAt(data.handle, blob, dataSize, 'payload data');
        dataSize += blob.length;
      }
      if (diff) {
        diffBytes += diff.diffBytes;
        extraBytes += diff.extraBytes;
        encoded += op.dstExtents[0]!.blockCount;
        progress({ phase: 'encode', done: encoded, total: diffTotal });
      }
      operations.push(op);
      if (operations.length > LIMITS.MAX_OPS) throw new FastPatchError('USAGE', `the delta needs more than ${LIMITS.MAX_OPS} operations`);
    }
  };
  for (const [i, p] of plan.entries()) {
    queue.push(buildOperation(i, p, core, index, scan, pool, votes));
    queue[queue.length - 1]!.catch(() => {}); // awaited in order by writeOldest
    if (queue.length >= DISPATCH_WINDOW) await writeOldest();
  }
  while (queue.length > 0) await writeOldest();
  return { operations, dataSize, diffBytes, extraBytes };
}

/** What pass 2 learns of the target, per block. */
interface TargetScan {
  blocks: number;
  hash: Uint8Array;
  digests: Uint8Array;
  zero: Uint8Array;
  match: Int32Array;
}

async function scanTarget(core: WasmCore, index: SourceIndex, target: OpenImage, anchors: AnchorIndex | undefined, onRead: (bytes: number) => void): Promise<TargetScan> {
  const blocks = Math.ceil(target.size / BLOCK_SIZE);
  const scan: TargetScan = { blocks, hash: new Uint8Array(0), digests: new Uint8Array(blocks * DIGEST_SIZE), zero: new Uint8Array(blocks), match: new Int32Array(blocks) };
  const root = new BlockListHasher(core);
  let previous = -1;
  for await (const { pos, data: window } of readWindows(target, core.windowSize)) {
    const n = window.length;
    const first = pos / BLOCK_SIZE;
    const count = core.blockDigestsInto(window, scan.digests, first * DIGEST_SIZE);
    const digests = scan.digests.subarray(first * DIGEST_SIZE, (first + count) * DIGEST_SIZE);
    const zero = scan.zero.subarray(first, first + count);
    core.zeroBlockFlagsInto(window, zero);
    root.updateDigests(digests);
    // A short last block is never a copy nor a ZERO block: both would write a whole block.
    const short = n % BLOCK_SIZE !== 0;
    if (short) zero[count - 1] = 0;
    index.match(first, digests, zero, scan.match.subarray(first, first + count), previous);
    if (short) scan.match[first + count - 1] = -1;
    previous = scan.match[first + count - 1]!;
    anchors?.add(window.subarray(0, n), pos);
    onRead(pos + n);
  }
  scan.hash = root.digest();
  return scan;
}

function outputHashOf(core: WasmCore, scan: TargetScan, start: number, count: number): Uint8Array {
  return core.sha256().update(scan.digests.subarray(start * DIGEST_SIZE, (start + count) * DIGEST_SIZE)).digest();
}

/** A diff job's votes (diff-op.ts, votesOf), from its bytes read here into `buffer`. */
async function votesIn(target: OpenImage, index: SourceIndex, targetAnchors: AnchorIndex | undefined, p: PlannedOp, buffer: Uint8Array): Promise<Pick<DiffJob, 'sourceVotes' | 'targetVotes'>> {
  const bytes = buffer.subarray(0, Math.min(p.count * BLOCK_SIZE, target.size - p.start * BLOCK_SIZE));
  await readFully(target, bytes, bytes.length, p.start * BLOCK_SIZE);
  return votesOf(index.anchorIndex, targetAnchors, bytes, p.start, index.blocks);
}

/**
 * `work`, run for one call at a time: DISPATCH_WINDOW jobs start at once, and each reads its range
 * of the target to vote; one at a time, they share one buffer (all at once took 64 MiB more peak
 * memory on the 64 MiB Debian pair).
 */
function oneAtATime<A, T>(work: (arg: A) => Promise<T>): (arg: A) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (arg) => {
    const next = tail.then(() => work(arg));
    tail = next.catch(() => {});
    return next;
  };
}

/** Block-list hash of target blocks read as `extents`, from the scan's digests. */
function extentsHashOf(core: WasmCore, scan: TargetScan, extents: readonly Extent[]): Uint8Array {
  const hasher = core.sha256();
  for (const e of extents) hasher.update(scan.digests.subarray(e.startBlock * DIGEST_SIZE, (e.startBlock + e.blockCount) * DIGEST_SIZE));
  return hasher.digest();
}

/** An operation ready to be written in order, with its data blob. */
interface Built {
  op: Operation;
  blob?: Uint8Array;
  diff?: DiffResult;
}

async function buildOperation(
  i: number, p: PlannedOp, core: WasmCore, index: SourceIndex, scan: TargetScan, pool: WorkerPool<DiffJob, DiffResult[]>,
  votes: (p: PlannedOp) => Promise<Pick<DiffJob, 'sourceVotes' | 'targetVotes'>>,
): Promise<Built[]> {
  const dstExtents = [{ startBlock: p.start, blockCount: p.count }];
  const base = { dataOffset: 0, dataLength: 0, dataHash: undefined, sourceHash: undefined, srcExtents: [], dstExtents };
  if (p.kind === 'zero') {
    return [{ op: { ...base, type: OpType.ZERO, outputHash: zeroBlockListHash(core, p.count * BLOCK_SIZE) } }];
  }
  if (p.kind === 'copy') {
    return [{ op: { ...base, type: OpType.SOURCE_COPY, outputHash: outputHashOf(core, scan, p.start, p.count), sourceHash: index.extentsHash(p.source), srcExtents: p.source } }];
  }
  const copies = scan.match.slice(p.start, p.start + p.count);
  const { sourceVotes, targetVotes } = await votes(p);
  const diffs = await pool.run(
    { index: i, start: p.start, count: p.count, copies, sourceVotes, ...(targetVotes ? { targetVotes } : {}) },
    [copies.buffer, sourceVotes.buffer as ArrayBuffer, ...(targetVotes ? [targetVotes.buffer as ArrayBuffer] : [])],
    // Longest first among the ranges waiting (up to DISPATCH_WINDOW): a range's encodings take
    // time in proportion to its length, and a long range sent last was the 64 MiB pair's tail.
    p.count,
  );
  // A job's operations cover its blocks in order, one after another (diff-op.ts).
  let next = p.start;
  const built = diffs.map((diff) => {
    if (diff.start !== next || diff.count < 1) throw new Error(`unreachable: diff job ${i} returned blocks ${diff.start}+${diff.count}, expected ${next}`);
    next += diff.count;
    const op: Operation = {
      ...base,
      type: diff.type,
      dataLength: diff.blob.length,
      dataHash: blockListHash(core, diff.blob),
      outputHash: outputHashOf(core, scan, diff.start, diff.count),
      sourceHash: diff.srcExtents.length > 0 ? index.extentsHash(diff.srcExtents) : undefined,
      srcExtents: diff.srcExtents,
      dstExtents: [{ startBlock: diff.start, blockCount: diff.count }],
      // Its hash from the target's block digests, as an output hash is.
      ...(diff.targetDictionary && diff.targetDictionary.length > 0
        ? { targetDictionary: diff.targetDictionary, targetDictionaryHash: extentsHashOf(core, scan, diff.targetDictionary) }
        : {}),
    };
    return { op, blob: diff.blob, diff };
  });
  if (next !== p.start + p.count) throw new Error(`unreachable: diff job ${i} covered blocks up to ${next}, not ${p.start + p.count}`);
  return built;
}

/** The fingerprint index of the new image in a delta module of its own, its memory sized at setup. */
function targetAnchorIndex(build: CoreBuild, core: WasmCore, size: number): AnchorIndex {
  const module = new DeltaCore(build);
  const index = new AnchorIndex(module, size);
  module.reserve(scratchFor(core));
  return index;
}
