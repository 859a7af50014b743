/**
 * Earlier blocks of the new image, for SOURCE_ZSTD operations whose dictionary names some (format
 * 2, docs/FORMAT.md, "zstd data").
 *
 * New files in a release resemble each other more than anything in the old image (the client
 * programs of one package share their library code), and zstd --patch-from finds that because its
 * window spans the whole new image. An operation's target dictionary names such blocks anywhere
 * before its output, by content (an image updated in place scatters a package's files over the
 * free space). They are read once the operations that wrote them are verified and written:
 *
 *  - apply: back from the target itself, so no copy is kept and a resumed apply needs nothing more;
 *  - verify (no target): from a sparse temporary file in a folder only this process may enter,
 *    where the blocks some dictionary names are put as their operations are verified.
 *
 * Either way the worker checks the bytes against the operation's signed target dictionary hash
 * before zstd sees them: nothing written to the device in between can reach a dictionary.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ioError } from '../errors.js';
import { BLOCK_SIZE } from '../format/constants.js';
import type { Extent, Manifest } from '../format/manifest.js';
import { readExtents, writeAllAt, type OpenImage } from '../io/device.js';
import { createExclusive } from '../io/safe-files.js';

export interface TargetBlocks {
  /** Puts a verified operation's output (its destination extents' bytes, in order) where read() finds the blocks it needs. */
  keep(dstExtents: readonly Extent[], output: Uint8Array | undefined): Promise<void>;
  /** The blocks of `extents`, one after another, read into `into` (of their length). */
  read(extents: readonly Extent[], into: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Whether any operation of the manifest takes target blocks into its dictionary. */
export function hasTargetDictionaries(m: Manifest): boolean {
  return m.operations.some((op) => (op.targetDictionary?.length ?? 0) > 0);
}

/** Target blocks read back from the target being written (apply). */
export function targetBlocksFromTarget(target: () => OpenImage): TargetBlocks {
  return {
    keep: async () => {},
    read: (extents, into) => readExtents(target(), extents, BLOCK_SIZE, () => into),
    close: async () => {},
  };
}

/**
 * Target blocks kept in a temporary file (verify): only those some dictionary names, each at its
 * own offset in a sparse file, so the disk holds no more than they are. ZERO operations write
 * nothing there: a block never written reads as zero.
 */
export async function targetBlocksInTempFile(m: Manifest): Promise<TargetBlocks> {
  const needed = mergedDictionaryExtents(m);
  let folder: string;
  try {
    folder = await mkdtemp(join(tmpdir(), 'fastpatch-verify-'));
  } catch (err) {
    throw ioError(`create a temporary folder in ${tmpdir()} for target dictionaries`, err);
  }
  const path = join(folder, 'target-blocks');
  let file: OpenImage;
  try {
    const handle = await createExclusive(path, 0o600);
    // Sparse, as long as the image: blocks never kept (zero runs) read as zeros, not past the end.
    await handle.truncate(m.targetSize).catch(async (err: unknown) => {
      await handle.close();
      throw err;
    });
    file = { handle, path, size: m.targetSize, isBlockDevice: false, created: true, identity: `temp:${path}` };
  } catch (err) {
    await rm(folder, { recursive: true, force: true });
    throw ioError(`create ${path}`, err);
  }
  return {
    async keep(dstExtents, output) {
      if (!output) return;
      let at = 0;
      for (const e of dstExtents) {
        for (const [start, count] of overlaps(needed, e.startBlock, e.blockCount)) {
          const from = at + (start - e.startBlock) * BLOCK_SIZE;
          const bytes = output.subarray(from, Math.min(output.length, from + count * BLOCK_SIZE));
          await writeAllAt(file.handle, bytes, start * BLOCK_SIZE, `target dictionary blocks to ${path}`);
        }
        at += e.blockCount * BLOCK_SIZE;
      }
    },
    read: (extents, into) => readExtents(file, extents, BLOCK_SIZE, () => into),
    async close() {
      await file.handle.close().catch(() => {});
      await rm(folder, { recursive: true, force: true });
    },
  };
}

/**
 * Every block some operation's target dictionary names, as ascending, disjoint ranges: starts[i]
 * to ends[i] (exclusive). Typed arrays, 16 bytes a range: a manifest may hold a million extents.
 */
interface Ranges {
  starts: Float64Array;
  ends: Float64Array;
}

function mergedDictionaryExtents(m: Manifest): Ranges {
  let n = 0;
  for (const op of m.operations) n += op.targetDictionary?.length ?? 0;
  const starts = new Float64Array(n);
  const ends = new Float64Array(n);
  let i = 0;
  for (const op of m.operations) {
    for (const e of op.targetDictionary ?? []) {
      starts[i] = e.startBlock;
      ends[i++] = e.startBlock + e.blockCount;
    }
  }
  const order = new Uint32Array(n).map((_, k) => k).sort((a, b) => starts[a]! - starts[b]!);
  const merged: Ranges = { starts: new Float64Array(n), ends: new Float64Array(n) };
  let count = 0;
  for (const k of order) {
    if (count > 0 && starts[k]! <= merged.ends[count - 1]!) merged.ends[count - 1] = Math.max(merged.ends[count - 1]!, ends[k]!);
    else {
      merged.starts[count] = starts[k]!;
      merged.ends[count++] = ends[k]!;
    }
  }
  return { starts: merged.starts.subarray(0, count), ends: merged.ends.subarray(0, count) };
}

/** The parts of blocks [start, start + count) inside `ranges`, as [first block, block count]. */
function overlaps(ranges: Ranges, start: number, count: number): [number, number][] {
  const end = start + count;
  // The first range that ends after `start` (binary search).
  let lo = 0;
  let hi = ranges.starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges.ends[mid]! <= start) lo = mid + 1;
    else hi = mid;
  }
  const out: [number, number][] = [];
  for (let i = lo; i < ranges.starts.length && ranges.starts[i]! < end; i++) {
    const s = Math.max(start, ranges.starts[i]!);
    const e = Math.min(end, ranges.ends[i]!);
    if (e > s) out.push([s, e - s]);
  }
  return out;
}
