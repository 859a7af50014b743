import { promises as fsp } from 'node:fs';
import { promisify } from 'node:util';
import { constants as zlibConstants, deflateRaw, zstdCompress } from 'node:zlib';
import { FastPatchError } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, FORMAT_VERSION, LIMITS, MIN_FORMAT_VERSION, OpType } from '../format/constants.js';
import { checkReleaseVersion, type Manifest, type Operation } from '../format/manifest.js';
import { openImageForRead, readFully, writeAllAt } from '../io/device.js';
import type { PrivateKey } from '../sign/keys.js';
import { BlockListHasher, blockListHash } from '../wasm/block-list.js';
import { WasmCore, type CoreBuild } from '../wasm/core.js';
import { zeroBlockListHash } from '../wasm/zero-digests.js';
import { discardTemp, type TempFile } from '../io/safe-files.js';
import { createDataTemp, writeAndDescribe, type GenerateResult } from './writer.js';

export type { GenerateResult } from './writer.js';

const deflateRawAsync = promisify(deflateRaw);
const zstdCompressAsync = promisify(zstdCompress);

/** How a full payload's data is compressed: zstd (format version 2), or deflate for appliers that read only version 1. */
export type Codec = 'zstd' | 'deflate';

/** The data codec of a format version; throws RangeError for a version this build does not write. */
export function codecOf(formatVersion: number = FORMAT_VERSION): Codec {
  if (formatVersion === 2) return 'zstd';
  if (formatVersion === 1) return 'deflate';
  throw new RangeError(`format version: ${MIN_FORMAT_VERSION}..${FORMAT_VERSION}, got ${formatVersion}`);
}

/**
 * Uncompressed bytes per data operation, per codec. Deflate's 32 KiB window makes larger chunks
 * gain little. zstd's window spans the whole chunk (ZSTD_WINDOW_LOG), and a root filesystem
 * repeats itself at that distance (similar libraries, locales): on the 512 MiB rootfs of
 * bench/rootfs.ts, zstd -12 made 118.4 MiB in 2 MiB chunks, 112.2 in 8 MiB and 111.3 in 16 MiB;
 * at level 16 on a 64 MiB slice of it, 16 MiB chunks were 2% smaller than 8 MiB ones
 * (bench/RESULTS.md, "Full payload codec"). 16 MiB is the format's limit on an operation's output.
 */
export const DATA_CHUNKS: Record<Codec, number> = { zstd: 16 * 1024 * 1024, deflate: 2 * 1024 * 1024 };
/** zstd's window: the whole 16 MiB chunk (levels up to 19 default to 8 MiB or less). */
const ZSTD_WINDOW_LOG = 24;

/** Zero runs at least this long (in blocks) become ZERO operations; shorter ones compress to nothing inside data. */
export const MIN_ZERO_RUN = 16;
/**
 * Level per codec when none is given (zstd 1..19, deflate 1..9). zstd 16 is the first level of
 * its optimal parser: on a 64 MiB slice of the bench rootfs, size relative to gzip -6 was 0.786 at
 * level 14, 0.755 at 16, 0.738 at 17 and 0.702 at 19, taking 1 : 1.7 : 2.7 : 3.7 the time
 * (bench/RESULTS.md, "Full payload codec"). 16 keeps a full payload well under 0.8x gzip at
 * half the time of 19; `--level 19` is there for a release that wants the last 7%.
 */
export const DEFAULT_LEVELS: Record<Codec, number> = { zstd: 16, deflate: 6 };
export const MAX_LEVELS: Record<Codec, number> = { zstd: 19, deflate: 9 };
/** Chunks being compressed at once: zlib runs on libuv's thread pool, so this keeps both cores busy. */
const COMPRESS_DEPTH = 4;
/** Largest block count one extent holds (u32 in the format). */
const MAX_EXTENT_BLOCKS = 0xffffffff;

export interface GenerateOptions {
  /** Image to package: a regular file or a block device. */
  target: string;
  /** Signing keys; the payload carries one signature per key. */
  keys: readonly PrivateKey[];
  /** Release version of the image, e.g. "1.2.0". */
  version: string;
  /** Where to write the payload (atomically: a new file renamed into place). */
  out: string;
  /** Replace an existing `out`; without it an existing file (or symlink) there is refused with FastPatchError('IO'). */
  force?: boolean;
  /**
   * Payload format version (default FORMAT_VERSION, 2: zstd data). 1 makes data only older
   * appliers read too (deflate in full payloads, brotli diffs in deltas), for fleets not yet updated.
   */
  formatVersion?: number;
  /** Compression level: zstd 1..19 (format 2), deflate 1..9 (format 1); default DEFAULT_LEVELS. */
  level?: number;
  build?: CoreBuild;
  onProgress?: (progress: { bytesRead: number; targetSize: number }) => void;
}


/** A data operation being assembled: consecutive blocks of the image. */
interface PendingData {
  startBlock: number;
  bytes: Uint8Array;
  length: number;
  digests: Uint8Array;
  blocks: number;
}

/** A finished operation with its data blob, waiting to be written in order. */
interface Built {
  op: Operation;
  blob: Uint8Array | undefined;
}

/**
 * Reads an image in windows, finds zero runs and hashes every block in WASM, compresses the rest in
 * DATA_CHUNKS pieces on the thread pool, and writes a signed full payload. Memory stays at a few
 * windows and chunks whatever the image size. Throws FastPatchError('IO') and RangeError.
 */
export async function generateFullPayload(options: GenerateOptions): Promise<GenerateResult> {
  const started = performance.now();
  const codec = codecOf(options.formatVersion);
  const level = options.level ?? DEFAULT_LEVELS[codec];
  if (!Number.isInteger(level) || level < 1 || level > MAX_LEVELS[codec]) throw new RangeError(`level: 1..${MAX_LEVELS[codec]} for ${codec}, got ${level}`);
  const chunk = DATA_CHUNKS[codec];
  if (options.keys.length === 0) throw new TypeError('keys: at least one signing key is needed');
  checkReleaseVersion(options.version);
  const core = WasmCore.load(options.build);
  const force = options.force === true;
  const image = await openImageForRead(options.target);
  let data: TempFile | undefined;
  try {
    // Every chunk of image may need an operation (and a zero run one more): refuse up front what
    // the operation limit cannot hold, not after compressing it all.
    if (image.size > LIMITS.MAX_IMAGE_SIZE || Math.ceil(image.size / chunk) > LIMITS.MAX_OPS / 2) {
      throw new FastPatchError('USAGE', `${options.target}: ${image.size} bytes is more than one full payload holds (${(LIMITS.MAX_OPS / 2) * (chunk >> 20)} MiB)`);
    }
    data = await createDataTemp(options.out, force);
    const state = new PlanState(core, codec, level, chunk, data.handle);
    // Our own buffer, not the WASM window: compressed chunks are hashed through the window while
    // this one is still being split into operations.
    const window = new Uint8Array(core.windowSize);
    const windowBlocks = core.windowSize / BLOCK_SIZE;
    const flags = new Uint8Array(windowBlocks);
    const digests = new Uint8Array(windowBlocks * DIGEST_SIZE);
    const root = new BlockListHasher(core);
    for (let pos = 0; pos < image.size; pos += core.windowSize) {
      const n = Math.min(core.windowSize, image.size - pos);
      await readFully(image, window, n, pos);
      const blocks = core.blockDigestsInto(window.subarray(0, n), digests);
      core.zeroBlockFlagsInto(window.subarray(0, n), flags);
      root.updateDigests(digests.subarray(0, blocks * DIGEST_SIZE));
      for (let b = 0; b < blocks; b++) {
        const length = Math.min(BLOCK_SIZE, n - b * BLOCK_SIZE);
        await state.addBlock(pos / BLOCK_SIZE + b, flags[b] === 1, window.subarray(b * BLOCK_SIZE, b * BLOCK_SIZE + length), digests.subarray(b * DIGEST_SIZE, (b + 1) * DIGEST_SIZE));
      }
      options.onProgress?.({ bytesRead: pos + n, targetSize: image.size });
    }
    const { operations, dataSize } = await state.finish();
    const manifest: Manifest = {
      blockSize: BLOCK_SIZE,
      targetSize: image.size,
      targetHash: root.digest(),
      sourceSize: 0,
      sourceHash: new Uint8Array(DIGEST_SIZE),
      version: options.version,
      sourceVersion: '',
      operations,
    };
    return await writeAndDescribe(options.out, manifest, data.handle, dataSize, options.keys, started, force);
  } finally {
    if (data) await discardTemp(data);
    await image.handle.close();
  }
}

/**
 * Turns the stream of classified blocks into operations: long zero runs become ZERO, everything
 * else is cut into chunk-sized pieces compressed concurrently and appended to the data file in order.
 */
class PlanState {
  private readonly operations: Operation[] = [];
  private readonly queue: Promise<Built>[] = [];
  private pending: PendingData | undefined;
  private zeroStart = -1;
  private zeroBlocks = 0;
  private dataSize = 0;
  private readonly zeroDigest: Uint8Array;
  /** Reused chunk buffers: fresh memory costs ~13 µs per page to first touch on this machine. */
  private readonly pool: Uint8Array[] = [];

  constructor(
    private readonly core: WasmCore,
    private readonly codec: Codec,
    private readonly level: number,
    private readonly chunk: number,
    private readonly data: fsp.FileHandle,
  ) {
    this.zeroDigest = new Uint8Array(DIGEST_SIZE);
    core.blockDigestsInto(new Uint8Array(BLOCK_SIZE), this.zeroDigest);
  }

  async addBlock(block: number, isZero: boolean, bytes: Uint8Array, digest: Uint8Array): Promise<void> {
    if (isZero && bytes.length === BLOCK_SIZE) {
      if (this.zeroBlocks === 0) this.zeroStart = block;
      this.zeroBlocks++;
      return;
    }
    await this.settleZeroRun();
    await this.appendData(block, bytes, digest);
  }

  async finish(): Promise<{ operations: Operation[]; dataSize: number }> {
    await this.settleZeroRun();
    await this.flushData();
    while (this.queue.length > 0) await this.writeOldest();
    return { operations: this.operations, dataSize: this.dataSize };
  }

  /** A pending zero run either becomes ZERO operations or, if short, joins the data as zero blocks. */
  private async settleZeroRun(): Promise<void> {
    if (this.zeroBlocks === 0) return;
    const start = this.zeroStart;
    const count = this.zeroBlocks;
    this.zeroBlocks = 0;
    if (count < MIN_ZERO_RUN && this.pending) {
      const zeros = new Uint8Array(BLOCK_SIZE);
      for (let i = 0; i < count; i++) await this.appendData(start + i, zeros, this.zeroDigest);
      return;
    }
    await this.flushData();
    for (let done = 0; done < count; done += MAX_EXTENT_BLOCKS) {
      const blocks = Math.min(MAX_EXTENT_BLOCKS, count - done);
      this.enqueue(Promise.resolve({
        op: zeroOp(start + done, blocks, zeroBlockListHash(this.core, blocks * BLOCK_SIZE)),
        blob: undefined,
      }));
    }
  }

  private async appendData(block: number, bytes: Uint8Array, digest: Uint8Array): Promise<void> {
    if (this.pending && this.pending.length + bytes.length > this.chunk) await this.flushData();
    if (!this.pending) {
      this.pending = {
        startBlock: block,
        bytes: this.pool.pop() ?? new Uint8Array(this.chunk),
        length: 0,
        digests: new Uint8Array((this.chunk / BLOCK_SIZE) * DIGEST_SIZE),
        blocks: 0,
      };
    }
    const p = this.pending;
    p.bytes.set(bytes, p.length);
    p.length += bytes.length;
    p.digests.set(digest, p.blocks * DIGEST_SIZE);
    p.blocks++;
  }

  private async flushData(): Promise<void> {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    const raw = p.bytes.subarray(0, p.length);
    const outputHash = this.core.sha256().update(p.digests.subarray(0, p.blocks * DIGEST_SIZE)).digest();
    const built = this.compress(raw).then((compressed): Built => {
      const extents = [{ startBlock: p.startBlock, blockCount: p.blocks }];
      // Incompressible chunks travel raw: their data hash is the output hash, and inflate is skipped.
      if (compressed.length >= p.length) {
        const blob = Uint8Array.from(raw);
        this.pool.push(p.bytes);
        return { op: dataOp(OpType.REPLACE, extents, p.length, outputHash, outputHash), blob };
      }
      this.pool.push(p.bytes);
      const type = this.codec === 'zstd' ? OpType.REPLACE_ZSTD : OpType.REPLACE_DEFLATE;
      return { op: dataOp(type, extents, compressed.length, blockListHash(this.core, compressed), outputHash), blob: compressed };
    });
    this.enqueue(built);
    if (this.queue.length >= COMPRESS_DEPTH) await this.writeOldest();
  }

  private compress(raw: Uint8Array): Promise<Uint8Array> {
    if (this.codec === 'deflate') return deflateRawAsync(raw, { level: this.level, chunkSize: this.chunk });
    return zstdCompressAsync(raw, { chunkSize: this.chunk, params: zstdParams(this.level) });
  }

  private enqueue(built: Promise<Built>): void {
    built.catch(() => {}); // awaited in order by writeOldest
    this.queue.push(built);
  }

  /** Appends the oldest operation's blob to the data file and records the operation. */
  private async writeOldest(): Promise<void> {
    const { op, blob } = await this.queue.shift()!;
    op.dataOffset = this.dataSize;
    if (blob) {
      await writeAllAt(this.data, blob, this.dataSize, 'payload data');
      this.dataSize += blob.length;
    }
    this.operations.push(op);
    if (this.operations.length > LIMITS.MAX_OPS) throw new FastPatchError('USAGE', `image needs more than ${LIMITS.MAX_OPS} operations`);
  }
}

/**
 * zstd parameters of one chunk. The chunk is compressed in one call, so the frame records its
 * content size and zstd sizes its window to the chunk: the device's decoder allocates no more.
 */
export function zstdParams(level: number): Record<number, number> {
  return {
    [zlibConstants.ZSTD_c_compressionLevel]: level,
    [zlibConstants.ZSTD_c_windowLog]: ZSTD_WINDOW_LOG,
    [zlibConstants.ZSTD_c_contentSizeFlag]: 1,
    [zlibConstants.ZSTD_c_checksumFlag]: 0,
  };
}

function zeroOp(startBlock: number, blockCount: number, outputHash: Uint8Array): Operation {
  return { type: OpType.ZERO, dataOffset: 0, dataLength: 0, dataHash: undefined, outputHash, sourceHash: undefined, srcExtents: [], dstExtents: [{ startBlock, blockCount }] };
}

function dataOp(type: number, dstExtents: Operation['dstExtents'], dataLength: number, dataHash: Uint8Array, outputHash: Uint8Array): Operation {
  return { type, dataOffset: 0, dataLength, dataHash, outputHash, sourceHash: undefined, srcExtents: [], dstExtents };
}
