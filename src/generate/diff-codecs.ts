/**
 * The compressors behind a diff range's encodings (diff-op.ts): brotli for the streams of a
 * SOURCE_DIFF (docs/FORMAT.md, "SOURCE_DIFF"), zstd for REPLACE_ZSTD and for SOURCE_ZSTD, whose
 * raw-content dictionary is the used source blocks, then the earlier target blocks.
 */
import { brotliCompressSync, constants as zc, zstdCompressSync } from 'node:zlib';
import { OpType, ZSTD_DICTIONARY_MAGIC } from '../format/constants.js';
import { Codec, Filter, type DiffStream } from '../format/diff.js';
import type { Extent } from '../format/manifest.js';
import { joined } from '../bytes.js';
import type { DiffResult } from './diff-job.js';
import { toExtents } from './diff-votes.js';

/** Source blocks of a zstd dictionary: their numbers, ascending, and their bytes one after another. */
export interface SourceDictionary {
  blocks: number[];
  bytes: Uint8Array;
}

/** Earlier target blocks as a zstd dictionary: their extents (ascending) and bytes, one after another. */
export interface TargetDictionary {
  extents: Extent[];
  bytes: Uint8Array;
}

/** Empty dictionaries: zstdEncode given both makes a REPLACE_ZSTD. */
export const NO_SOURCE: SourceDictionary = { blocks: [], bytes: new Uint8Array(0) };
export const NO_TARGET: TargetDictionary = { extents: [], bytes: new Uint8Array(0) };

/** A stream compressed with brotli, or stored if that is not smaller. */
export function pack(data: Uint8Array, quality: number): DiffStream {
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

/**
 * The zstd encodings of a range: the range alone (REPLACE_ZSTD), and the range with the source
 * blocks, then the earlier target blocks, as zstd's raw-content dictionary (SOURCE_ZSTD: zstd's
 * --patch-from, per operation). With `both` false, only the first where the matcher found little
 * similar (`plain`: fewer used blocks than a quarter of the range) and only the second elsewhere:
 * on the 512 MiB pair's new data the two came within 3% of each other, and each costs seconds at
 * level 19.
 */
export function zstdCandidates(level: number, t: Uint8Array, source: SourceDictionary, target: TargetDictionary, plain: boolean, both: boolean): Omit<DiffResult, 'index' | 'start' | 'count'>[] {
  const out: Omit<DiffResult, 'index' | 'start' | 'count'>[] = [];
  if (!both && plain) source = NO_SOURCE;
  // Earlier target blocks make zstd alone pointless: they are the dictionary then.
  if ((plain || source.blocks.length === 0) && target.extents.length === 0) out.push(zstdEncode(level, t, NO_SOURCE, NO_TARGET)!);
  if (source.blocks.length > 0 || target.extents.length > 0) {
    const z = zstdEncode(level, t, source, target);
    if (z) out.push(z);
  }
  return out;
}

/** One zstd encoding of `t`: REPLACE_ZSTD without dictionary, else SOURCE_ZSTD; undefined where zstd would take the dictionary for a structured one. */
export function zstdEncode(level: number, t: Uint8Array, source: SourceDictionary, target: TargetDictionary): Omit<DiffResult, 'index' | 'start' | 'count'> | undefined {
  const params = { [zc.ZSTD_c_compressionLevel]: level, [zc.ZSTD_c_contentSizeFlag]: 1, [zc.ZSTD_c_checksumFlag]: 0, ...ZSTD_SEARCH };
  const bytes = target.bytes.length === 0 ? source.bytes : source.bytes.length === 0 ? target.bytes : joined(source.bytes, target.bytes);
  if (bytes.length === 0) {
    if (source.blocks.length > 0 || target.extents.length > 0) return undefined;
    return { type: OpType.REPLACE_ZSTD, blob: transferable(zstdCompressSync(t, { params: { ...params, [zc.ZSTD_c_windowLog]: windowLogFor(t.length) } })), srcExtents: [], diffBytes: 0, extraBytes: 0 };
  }
  if (ZSTD_DICTIONARY_MAGIC.every((b, i) => bytes[i] === b)) return undefined;
  const blob = transferable(zstdCompressSync(t, { params: { ...params, [zc.ZSTD_c_windowLog]: windowLogFor(bytes.length + t.length) }, dictionary: bytes }));
  return { type: OpType.SOURCE_ZSTD, blob, srcExtents: toExtents(source.blocks), diffBytes: 0, extraBytes: 0, ...(target.extents.length > 0 ? { targetDictionary: target.extents } : {}) };
}

/**
 * zstd's match finder, capped. Its tables: level 19's own (chain log 24, hash log 22) take 144 MiB
 * per worker (its binary tree is 8 bytes a chain entry), chain log 23 took 72, these 24 MiB. With
 * both workers at it, chain log 23 held the 512 MiB pairs' generation peak at 560-600 MiB, 21 at
 * 463-508, for deltas 0.1% (64 MiB pair) to 0.4% (512 MiB pairs) larger. Its target length (a
 * match this long ends the search): 64 took the 64 MiB pair's generation from 3.04-3.43 to
 * 2.85-3.12 s (4.4 against 4.8 CPU-s) for deltas 0.2% (64 MiB pair), 0.4% (fresh 512 MiB) and 0.1%
 * (in place) larger; `zstd -19 --patch-from` stays larger on every pair.
 */
const ZSTD_SEARCH = { [zc.ZSTD_c_chainLog]: 21, [zc.ZSTD_c_hashLog]: 21, [zc.ZSTD_c_targetLength]: 64 };

/** A window that spans the dictionary and the range (at most 64 MiB: 16 MiB of source, of target dictionary and of range). */
function windowLogFor(bytes: number): number {
  return Math.min(26, Math.max(10, Math.ceil(Math.log2(bytes))));
}

/** A copy in memory of its own: zlib's sync results may not be transferable to the main thread. */
function transferable(data: Uint8Array): Uint8Array {
  return Uint8Array.from(data);
}
