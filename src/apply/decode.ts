import { brotliDecompressSync } from 'node:zlib';
import { followedBy, joined } from '../bytes.js';
import { FastPatchError } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, OP_NAMES, OpType, ZSTD_DICTIONARY_MAGIC } from '../format/constants.js';
import { Codec, decodeDiffBlob, Filter, type DiffStream } from '../format/diff.js';
import type { WasmCore } from '../wasm/core.js';
import { DeltaCore, PATCH_ERRORS } from '../wasm/delta.js';
import { decompressInto, type Decompressed } from './zlib-into.js';

/** What a decoder needs to know of one operation that carries data or reads the source. */
export interface DecodeJob {
  index: number;
  type: number;
  /** The data blob; empty for SOURCE_COPY. */
  blob: Uint8Array;
  /** Signed block-list hash of the blob (absent for SOURCE_COPY). */
  dataHash: Uint8Array | undefined;
  /** Bytes the operation's extents cover. */
  outputLength: number;
  /** The source blocks the operation reads, one after another (delta operations). */
  source?: Uint8Array;
  /** Signed block-list hash of `source`. */
  sourceHash?: Uint8Array;
  /** SOURCE_ZSTD: the earlier target blocks that join the dictionary, one after another (target-blocks.ts). */
  targetDictionary?: Uint8Array;
  /** Signed block-list hash of `targetDictionary`. */
  targetDictionaryHash?: Uint8Array;
  /** The source extents, as text for error messages ("1200+16, 5000+3"). */
  sourceExtents?: string;
  /**
   * Where to put a SOURCE_DIFF's, REPLACE_DEFLATE's or zstd operation's output (outputLength
   * bytes), a buffer the main thread reuses: patching or decompressing into it, rather than
   * handing over memory of the worker's own, keeps large buffers from being allocated on one thread
   * and freed on another (which grows the allocator's arenas), from piling up as garbage, and from
   * being mapped afresh, page by page, for every operation.
   */
  out?: Uint8Array;
  /** Where to put the output's block digests (a buffer the main thread reuses, as `out`). */
  digests?: Uint8Array;
}

/** A decoded operation: its output and the per-block SHA-256 digests of that output. */
export interface Decoded {
  /** A view of the blob's buffer or of a buffer of its own, so that it can move by transfer. */
  output: Uint8Array;
  digests: Uint8Array;
  /** The job's blob, handed back for reuse; a REPLACE output shares its memory. */
  blob: Uint8Array;
  /** The job's source data, handed back for reuse when the output is not a view of it (SOURCE_DIFF). */
  source?: Uint8Array;
  /** The job's `out`, handed back when the output did not go there (REPLACE, SOURCE_COPY). */
  spare?: Uint8Array;
  /** The job's `digests`, handed back when the digests did not go there. */
  spareDigests?: Uint8Array;
}

/**
 * Checks the blob against its signed hash, decodes it and hashes the output per block. Pure
 * computation, run in decode workers. Throws FastPatchError('HASH_MISMATCH' | 'CORRUPT_PAYLOAD').
 */
export function decodeOperation(core: WasmCore, job: DecodeJob, delta?: () => DeltaCore, collect?: Collect): Decoded {
  const decoded = decodeInto(core, job, delta, collect);
  return {
    ...decoded,
    ...(job.out && decoded.output.buffer !== job.out.buffer ? { spare: job.out } : {}),
    ...(job.digests && decoded.digests.buffer !== job.digests.buffer ? { spareDigests: job.digests } : {}),
  };
}

/**
 * A decode worker drops its delta module after a job that grew the module's memory past this (and
 * collects it, which returns the memory): WASM memory never shrinks, and one operation at the
 * limits grows it by 64 MiB, which every worker would otherwise keep for the rest of the run.
 */
export const KEEP_DELTA_BYTES = 8 * 1024 * 1024;

/** Frees the garbage a decode step just left (a young-generation collection in a worker). */
export type Collect = () => void;

/**
 * Memory a decode worker uses for `job` beyond the buffers the job carries (blob, source, out and
 * digests, which the main thread counts in its window), at most:
 * - SOURCE_DIFF: the delta module holds source, the three decompressed streams and the output once
 *   (DeltaCore.patchStreams), and JS one decompressed brotli stream X and brotli's ring buffer
 *   (≤ min(16 MiB, 2X)) at a time: S + C + D + E + O + max(X + min(16 MiB, 2X)), ≤ 96 MiB at
 *   the per-operation limits (S, C, D + E and O ≤ 16 MiB each);
 * - REPLACE_DEFLATE: zlib's 32 KiB window (the output goes into the job's `out`): 64 KiB;
 * - REPLACE_ZSTD: zstd's decoder, ~160 KiB of tables, and when it cannot decode the frame in one
 *   pass into `out` (no content size in the frame), a window buffer of at most the output: O + 256 KiB;
 * - SOURCE_ZSTD: the same, and zstd's own copy of the dictionary (the source): S + O + 256 KiB;
 * - REPLACE, SOURCE_COPY: nothing (hashed through the core's fixed window).
 * A malformed diff header counts as nothing: the worker refuses it before allocating.
 */
export function workerBytes(job: Pick<DecodeJob, 'type' | 'blob' | 'outputLength' | 'source' | 'targetDictionary'>): number {
  if (job.type === OpType.REPLACE_DEFLATE) return 64 * 1024;
  // zstd copies its dictionary (the source and target dictionary); one not right after the source
  // in its buffer is joined to it first (another copy).
  if (job.type === OpType.REPLACE_ZSTD || job.type === OpType.SOURCE_ZSTD) {
    const target = job.targetDictionary ?? new Uint8Array(0);
    const joined = target.length > 0 && !(job.source && followedBy(job.source, target)) ? (job.source?.length ?? 0) + target.length : 0;
    return (job.source?.length ?? 0) + target.length + joined + job.outputLength + 256 * 1024;
  }
  if (job.type !== OpType.SOURCE_DIFF) return 0;
  let streams: DiffStream[];
  try {
    streams = decodeDiffBlob(job.blob, job.outputLength, 'operation');
  } catch {
    return 0;
  }
  const raw = streams.map((s) => s.rawLength);
  // Brotli's ring buffer: a power of two up to its 16 MiB window, never above twice the output.
  const brotli = Math.max(0, ...streams.map((s) => (s.codec === Codec.STORED ? 0 : s.rawLength + Math.min(16 * 1024 * 1024, 2 * s.rawLength))));
  return (job.source?.length ?? 0) + raw[0]! + raw[1]! + raw[2]! + job.outputLength + brotli + 64 * 1024;
}

function decodeInto(core: WasmCore, job: DecodeJob, delta?: () => DeltaCore, collect?: Collect): Decoded {
  const what = `operation ${job.index} (${OP_NAMES[job.type]})`;
  const source = job.source ?? new Uint8Array(0);
  let sourceDigests: Uint8Array | undefined;
  if (job.sourceHash) {
    // The source is checked before anything is made of it: a wrong source image stops here.
    // A whole-block copy's source digests are its output's: they go where the output's belong.
    sourceDigests = blockDigests(core, source, job.type === OpType.SOURCE_COPY ? job.digests : undefined);
    if (Buffer.compare(core.sha256().update(sourceDigests).digest(), job.sourceHash) !== 0) {
      throw new FastPatchError('SOURCE_MISMATCH', `${what}: source blocks ${job.sourceExtents} differ from the source this delta was made from`);
    }
  }
  if (job.targetDictionary) {
    // Blocks this applier verified and wrote (or kept), read back: checked again, as a source is, before zstd uses them.
    const digests = blockDigests(core, job.targetDictionary);
    if (!job.targetDictionaryHash || Buffer.compare(core.sha256().update(digests).digest(), job.targetDictionaryHash) !== 0) {
      throw new FastPatchError('HASH_MISMATCH', `${what}: the earlier target blocks it names differ from those its dictionary was made with`);
    }
  }
  if (job.type === OpType.SOURCE_COPY) {
    if (source.length < job.outputLength) throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${source.length} source bytes for ${job.outputLength} of output`);
    const output = source.subarray(0, job.outputLength);
    // Whole blocks: the source's digests are the output's; a short last block is hashed again.
    const digests = output.length === source.length ? sourceDigests! : blockDigests(core, output, job.digests);
    return { output, digests, blob: job.blob };
  }
  if (!job.dataHash) throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: carries no data`);
  const blobDigests = blockDigests(core, job.blob, job.type === OpType.REPLACE ? job.digests : undefined);
  if (Buffer.compare(core.sha256().update(blobDigests).digest(), job.dataHash) !== 0) {
    throw new FastPatchError('HASH_MISMATCH', `${what}: data does not match its signed hash`);
  }
  let output: Uint8Array;
  if (job.type === OpType.SOURCE_DIFF) {
    if (!delta) throw new Error('unreachable: SOURCE_DIFF without a delta module');
    output = applyDiff(delta(), source, job, what, outBuffer(job) ?? new Uint8Array(job.outputLength), collect);
  } else if (job.type === OpType.REPLACE) {
    // The blob is the output: its block digests, just computed, are the output's.
    if (job.blob.length !== job.outputLength) throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${job.blob.length} bytes of data for ${job.outputLength} of output`);
    return { output: job.blob, digests: blobDigests, blob: job.blob };
  } else if (job.type === OpType.REPLACE_DEFLATE || job.type === OpType.REPLACE_ZSTD || job.type === OpType.SOURCE_ZSTD) {
    output = decompress(job, source, what);
  } else {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: not a data operation`);
  }
  if (output.length !== job.outputLength) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: produces ${output.length} bytes, its extents hold ${job.outputLength}`);
  }
  // A SOURCE_DIFF's or SOURCE_ZSTD's source was only read from: handed back for reuse.
  // An empty source may be a view of the buffer that holds the target dictionary.
  const handBack = (job.type === OpType.SOURCE_DIFF || job.type === OpType.SOURCE_ZSTD) && job.source && job.source.buffer.byteLength > 0 ? { source: job.source } : {};
  return { output, digests: blockDigests(core, output, job.digests), blob: job.blob, ...handBack };
}

/**
 * Inflates a REPLACE_DEFLATE or decompresses a zstd operation straight into the job's `out` (or a
 * new buffer when it has none of the output's length): no re-assembly, and anything longer than
 * the output is an error (zlib-into.ts). A SOURCE_ZSTD's source is its raw-content dictionary:
 * zstd matches into it as into earlier output.
 */
function decompress(job: DecodeJob, sourceData: Uint8Array, what: string): Uint8Array {
  // The dictionary: the source data, then the target blocks before the output, if any. The
  // applier puts the two one after the other in one buffer; joined here only when they are not.
  const target = job.targetDictionary;
  const source = !target || target.length === 0 ? sourceData : joined(sourceData, target);
  const into = outBuffer(job) ?? new Uint8Array(job.outputLength);
  const codec = job.type === OpType.REPLACE_DEFLATE ? 'deflate' : 'zstd';
  // zstd would parse a dictionary that starts with its magic number as a formatted one.
  if (job.type === OpType.SOURCE_ZSTD && (source.length < ZSTD_DICTIONARY_MAGIC.length || ZSTD_DICTIONARY_MAGIC.every((b, i) => source[i] === b))) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: source data is not usable as a raw zstd dictionary`);
  }
  let done: Decompressed;
  try {
    done = decompressInto(codec, job.blob, into, job.type === OpType.SOURCE_ZSTD ? source : undefined);
  } catch (err) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${codec} data does not decode to ${job.outputLength} bytes (${(err as Error).message})`);
  }
  // zstd stops after one frame: anything after it would be signed bytes nobody decodes.
  if (codec === 'zstd' && done.read !== job.blob.length) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${job.blob.length - done.read} bytes follow the zstd frame`);
  }
  return into.subarray(0, done.written);
}

/** The job's `out` when it holds exactly the output. */
function outBuffer(job: DecodeJob): Uint8Array | undefined {
  return job.out && job.out.length === job.outputLength ? job.out : undefined;
}

/**
 * Rebuilds a SOURCE_DIFF's output into `into`: streams checked against the header, decompressed with
 * exact limits one at a time straight into the delta module's memory, filters undone there in place,
 * patched in WASM (memory: workerBytes).
 */
function applyDiff(delta: DeltaCore, source: Uint8Array, job: DecodeJob, what: string, into: Uint8Array, collect?: Collect): Uint8Array {
  const streams = decodeDiffBlob(job.blob, job.outputLength, what);
  const lengths = streams.map((s) => s.rawLength) as [number, number, number];
  const x86 = streams.map((s) => s.filter === Filter.X86) as [boolean, boolean, boolean];
  const result = delta.patchStreams(source, lengths, x86, (i, region) => {
    const stream = streams[i]!;
    if (stream.codec === Codec.STORED) return region.set(stream.data);
    region.set(unpack(stream, what, STREAM_NAMES[i]!));
    // The decompressed copy is garbage now: freed before the next stream is decompressed.
    if (stream.rawLength >= 1024 * 1024) collect?.();
  }, into);
  if (typeof result === 'number') throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${PATCH_ERRORS[result] ?? `diff error ${result}`}`);
  return result;
}

const STREAM_NAMES = ['control', 'difference', 'extra'] as const;

function unpack(stream: DiffStream, what: string, name: string): Uint8Array {
  let raw: Uint8Array;
  try {
    // One output chunk of exactly the announced length (and a byte to spare, as for inflate):
    // zlib's default 16 KiB chunks are concatenated at the end, holding the stream twice.
    raw = brotliDecompressSync(stream.data, { maxOutputLength: Math.max(stream.rawLength, 1), chunkSize: Math.max(stream.rawLength + 1, 64) });
  } catch (err) {
    throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${name} stream does not decode to ${stream.rawLength} bytes (${(err as Error).message})`);
  }
  if (raw.length !== stream.rawLength) throw new FastPatchError('CORRUPT_PAYLOAD', `${what}: ${name} stream decodes to ${raw.length} bytes, not ${stream.rawLength}`);
  return raw;
}

/** SHA-256 of each 4096-byte block of `data` (the last may be short), in `into` if it has the length, else in a new array. */
function blockDigests(core: WasmCore, data: Uint8Array, into?: Uint8Array): Uint8Array {
  const length = Math.ceil(data.length / BLOCK_SIZE) * DIGEST_SIZE;
  const digests = into?.length === length ? into : new Uint8Array(length);
  core.blockDigestsInto(data, digests);
  return digests;
}
