/**
 * What a payload may ask of the device, checked before work that grows with it: the pipeline's
 * window and pools, the memory bound they make, the image size a payload may declare, and the
 * releases it may replace. Constants and checks only; the applier (applier.ts) enforces them.
 */
import { promises as fsp, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { FastPatchError } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, LIMITS } from '../format/constants.js';
import { compareVersions } from '../format/version.js';
import { imageSize } from '../io/device.js';
import { SLOT_BYTES, SLOTS } from '../io/direct-writer.js';
import type { ApplyOptions } from './options.js';
import { COLLECT_EVERY } from '../runtime/collect.js';
import { KEEP_DELTA_BYTES } from './decode.js';
import { DECODE_MEMORY_BUDGET, WORKER_HEAP_LIMITS } from './decode-pool.js';

/**
 * Operations in flight: being checked, inflated, patched and hashed by the decode workers, or
 * written. A delta has many small operations (one-block diffs between copies), so the window is
 * counted in bytes as well as operations: at most PIPELINE_DEPTH operations, and no new one while
 * those in flight hold more than PIPELINE_BYTES of data, source and output. With the blob buffers
 * the reader keeps, this sets the memory bound of README.md, "Memory".
 */
export const PIPELINE_DEPTH = 32;
export const PIPELINE_BYTES = 32 * 1024 * 1024;
/**
 * Verified operations whose writes may be in flight at once. Writes go to disjoint extents, so
 * they need not wait for each other; overlapping them with the next operations' checks keeps the
 * device busy while the cores hash (a delta's copies are read, hashed and written: one at a time,
 * each stage waited on the others).
 */
export const WRITE_DEPTH = 4;
/**
 * Bytes written between two flushes started while the apply goes on (a datasync of the target,
 * one at a time, not waited for): the device writes back while the cores decode, instead of all
 * of it in finish()'s fsync. FASTPATCH_FLUSH_MIB overrides it (0: only the final fsync).
 */
export const FLUSH_EVERY = (process.env['FASTPATCH_FLUSH_MIB'] !== undefined ? Number(process.env['FASTPATCH_FLUSH_MIB']) : 64) * 1024 * 1024;

/**
 * Blob, source, output and digest buffers kept for reuse (buffer-pool.ts): as many as the pipeline can
 * hold at once, so that once it has filled, operations read their source blocks, and have their
 * outputs and digests put, into memory the main thread already owns, and nothing is allocated per
 * operation. Measured with `npm run rss` (medians of 5), with the decode workers copying inflated
 * outputs into these buffers and the payload read into reused chunks (io/input.ts): a full
 * payload's apply peak went from 129 to 101 MiB at 1 GiB and from 145 to 109 MiB at 8 GiB.
 */
export const BUFFER_POOL_SIZE = PIPELINE_DEPTH + WRITE_DEPTH + 4;
export const BUFFER_POOL_BYTES = PIPELINE_BYTES + 16 * 1024 * 1024;

/**
 * Peak memory of an apply beyond its baseline (Node, the CLI, the decode workers' isolates and WASM
 * cores), at worst, from the format's per-operation limit L = 16 MiB (an operation's blob, source,
 * output, and each decompressed diff stream) and the pipeline's constants; W decode workers:
 *
 *   head        8 × manifest bytes           its bytes, decoded operations and extents (≤ 8 × 16 MiB)
 * + window      max(PIPELINE_BYTES, 4L) + 4L  operations in flight: blob, source, output and target
 *                                            dictionary buffers, as allocated (128 MiB: the window admits one more operation
 *                                            while it holds at most PIPELINE_BYTES, or one operation)
 * + digests     PIPELINE_DEPTH × L/128       their digest lists (4 MiB)
 * + filling     L                            the blob being read (16 MiB)
 * + writes      (WRITE_DEPTH + 1) × L        outputs being written, apply only (80 MiB)
 * + staging     SLOTS × SLOT_BYTES           their copies on the way to a block device past the
 *                                            page cache (io/direct-writer.ts), apply only (16 MiB)
 * + pools       2 × BUFFER_POOL_BYTES + BUFFER_POOL_SIZE × L/128   idle buffers kept for reuse (101 MiB)
 * + garbage     COLLECT_EVERY                buffers the pools dropped, before the collection that
 *                                            frees them (32 MiB)
 * + input       2 × 1 MiB                    the payload's read chunks (io/input.ts)
 * + in workers  DECODE_MEMORY_BUDGET         what running jobs use in the workers (decode-pool.ts:
 *                                            delta module memory, decompressed streams; 100 MiB)
 * + per worker  W × (KEEP_DELTA_BYTES + young)  a delta module kept between jobs, and young garbage
 *                                            up to the young generation's limit (WORKER_HEAP_LIMITS;
 *                                            10 MiB each)
 *
 * The window term is max(PIPELINE_BYTES, 4L) + 4L since a SOURCE_ZSTD may hold a target dictionary
 * (≤ L, read back from the target when its turn comes) beside its blob, source and output.
 * verify: 423 MiB + 8 × manifest with 4 workers (≤ 551 MiB); apply: 96 MiB more (≤ 647 MiB).
 * Enforced by the window (startOperation), the write queue, the pools' limits, DecodePool's budget
 * and the workers dropping a grown delta module; test/apply/worker-memory.test.ts measures it.
 */
export function memoryBound(options: { manifestBytes?: number; writes: boolean; workers?: number }): number {
  const L = LIMITS.MAX_OP_OUTPUT;
  const digestList = (L / BLOCK_SIZE) * DIGEST_SIZE;
  return (
    8 * (options.manifestBytes ?? LIMITS.MAX_MANIFEST_SIZE) +
    // An operation holds at most its blob, source, output and target dictionary (4 L).
    Math.max(PIPELINE_BYTES, 4 * L) + 4 * L +
    PIPELINE_DEPTH * digestList +
    L +
    (options.writes ? (WRITE_DEPTH + 1) * L + SLOTS * SLOT_BYTES : 0) +
    2 * BUFFER_POOL_BYTES + BUFFER_POOL_SIZE * digestList +
    COLLECT_EVERY +
    2 * 1024 * 1024 +
    DECODE_MEMORY_BUDGET +
    (options.workers ?? 4) * (KEEP_DELTA_BYTES + WORKER_HEAP_LIMITS.maxYoungGenerationSizeMb * 1024 * 1024)
  );
}

/** The release checks of ApplyOptions.minimumVersion and sourceVersion, on a signed manifest. */
export function checkReleases(m: { version: string; sourceSize: number; sourceVersion: string }, options: Pick<ApplyOptions, 'minimumVersion' | 'sourceVersion'>): void {
  if (options.minimumVersion !== undefined && compareVersions(m.version, options.minimumVersion) < 0) {
    throw new FastPatchError('DOWNGRADE', `release ${m.version} is older than release ${options.minimumVersion}, which the device runs; refusing to downgrade`);
  }
  const known = options.sourceVersion;
  if (m.sourceSize > 0 && m.sourceVersion !== '' && known !== undefined && known !== m.sourceVersion) {
    throw new FastPatchError('SOURCE_MISMATCH', `this delta needs release ${m.sourceVersion} as its source; the source holds release ${known}: install the full payload of release ${m.version}, or a delta made from release ${known}`);
  }
}

/** Largest image `verify` (no target) accepts unless told otherwise: 64 GiB, about 4 s of hashing zeros. */
export const DEFAULT_MAX_IMAGE_SIZE = 64 * 1024 ** 3;

/**
 * Refuses (FastPatchError 'TARGET_TOO_SMALL') an image size a payload declares that nothing real
 * bounds: a signed payload of a few ZERO operations may declare 2^53 bytes, and its image hash
 * costs about 60 ms per GiB to check (one digest per 4 KiB block), days for 2^53. The bound is the
 * target's size (an existing file, device or slot range), the free space of the folder a new
 * target file would be created in, and without a target `maxImageSize` (default
 * DEFAULT_MAX_IMAGE_SIZE). openTarget checks the size again once the target is open.
 */
export async function checkDeclaredSize(size: number, options: Pick<ApplyOptions, 'target' | 'targetRange' | 'maxImageSize'>): Promise<void> {
  const limit = options.maxImageSize ?? (options.target === undefined ? DEFAULT_MAX_IMAGE_SIZE : Infinity);
  if (size > limit) {
    throw new FastPatchError('TARGET_TOO_SMALL', `the payload declares a ${size}-byte image, more than the ${limit}-byte limit; if that size is expected, raise it (--max-image-size)`);
  }
  const path = options.target;
  if (path === undefined) return;
  const range = options.targetRange;
  if (range) {
    if (range.length < size) throw new FastPatchError('TARGET_TOO_SMALL', `target ${path} bytes ${range.offset}+${range.length} hold ${range.length} bytes, the image needs ${size}`);
    return;
  }
  let stats: Stats;
  try {
    stats = await fsp.stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return; // openTarget reports it
    // A new file: the folder it goes in must have room for the whole image (ZERO runs are not
    // written to a new file, but the image is meant to be used, and grows into the space).
    const folder = dirname(resolve(path));
    let free: bigint;
    try {
      const fs = await fsp.statfs(folder, { bigint: true });
      free = fs.bavail * fs.bsize;
    } catch {
      return; // a missing folder: openTarget reports it
    }
    if (BigInt(size) > free) {
      throw new FastPatchError('TARGET_TOO_SMALL', `target ${path} would be a new ${size}-byte file, but ${folder} has ${free} bytes free; free space or choose another target`);
    }
    return;
  }
  if (!stats.isFile() && !stats.isBlockDevice()) return; // openTarget refuses it
  const have = await imageSize(stats, path).catch(() => undefined);
  if (have !== undefined && have < size) {
    throw new FastPatchError('TARGET_TOO_SMALL', `target ${path} holds ${have} bytes, the image needs ${size}`);
  }
}

/** "; this delta needs release 1.1.0" when the manifest names its source release. */
export function needsRelease(m: { sourceVersion: string }): string {
  return m.sourceVersion !== '' ? `; this delta needs release ${m.sourceVersion}` : '';
}
