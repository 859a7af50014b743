import { FastPatchError, ioError } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, HEADER_SIZE, LIMITS, OP_NAMES, OpType, SOURCE_OPS } from '../format/constants.js';
import { decodeHeader } from '../format/header.js';
import { blockBytes, extentBytes, type Extent, type Operation } from '../format/manifest.js';
import { hex } from '../hex.js';
import { type PrivateKey, type PublicKey } from '../sign/keys.js';
import { verifyPayload } from '../sign/signer.js';
import { DirectWriter } from '../io/direct-writer.js';
import { checkDisjoint, checkOtherNamesFree, createTarget, imageRange, openExistingTarget, openImageForRead, readExtents, readFully, removeCreatedTarget, writeFully, type OpenImage } from '../io/device.js';
import { hashOpenImage } from './hash-image.js';
import { isSeekable, readRange, type PayloadInput } from '../io/payload-source.js';
import { BlockListHasher, WasmCore, type CoreBuild } from '../wasm/core.js';
import { feedZeroDigests } from '../wasm/zero-digests.js';
import type { Decoded } from './decode.js';
import { BufferPool } from './buffer-pool.js';
import { hasTargetDictionaries, targetBlocksFromTarget, targetBlocksInTempFile, type TargetBlocks } from './target-blocks.js';
import { GarbageMeter } from '../runtime/collect.js';
import { DecodePool } from './decode-pool.js';
import { BUFFER_POOL_BYTES, BUFFER_POOL_SIZE, FLUSH_EVERY, PIPELINE_BYTES, PIPELINE_DEPTH, WRITE_DEPTH, checkDeclaredSize, checkReleases, needsRelease } from './limits.js';

export { DEFAULT_MAX_IMAGE_SIZE, PIPELINE_BYTES, PIPELINE_DEPTH, WRITE_DEPTH, memoryBound } from './limits.js';
import { scanTarget } from './resume.js';
import { PayloadReader, type PayloadHead } from './reader.js';

/** Operation types whose output is made by decoding into a buffer of the main thread's (decode.ts). */
const DECODED_OPS: ReadonlySet<number> = new Set([OpType.SOURCE_DIFF, OpType.REPLACE_DEFLATE, OpType.REPLACE_ZSTD, OpType.SOURCE_ZSTD]);

/** Reused 1 MiB of zeros for writing ZERO operations. */
const ZERO_CHUNK = new Uint8Array(1024 * 1024);

export interface ApplyOptions {
  /** Keys whose signature is accepted; at least one. */
  trustedKeys: readonly (PublicKey | PrivateKey)[];
  /** File or block device to write; a missing path is created. Omit to verify without writing. */
  target?: string;
  /**
   * The image a delta payload was made from (the running slot): only read. Required for delta
   * payloads, ignored for full ones.
   */
  source?: string;
  /**
   * Hash the whole source and compare it with the signed source hash before anything is written,
   * so that a wrong source leaves the target untouched (costs one read of the source). Without it,
   * each operation checks the source blocks it reads just before it writes.
   */
  checkSource?: boolean;
  /**
   * Refuse (FastPatchError 'DOWNGRADE', before the target is opened) a payload whose release is
   * older than this (format/version.ts): the release the device runs now.
   */
  minimumVersion?: string;
  /**
   * The release the source image holds, when known: a delta made from another release is refused
   * before the target is opened, naming the release it needs.
   */
  sourceVersion?: string;
  /**
   * Largest image (bytes) the payload may declare. Default: DEFAULT_MAX_IMAGE_SIZE (64 GiB) without
   * a target (verify); with one, the target's size or the free space for a new file bounds it.
   */
  maxImageSize?: number;
  /** Write the image into this byte range of `target` (a slot partition inside a whole disk). */
  targetRange?: ByteRange;
  /** Read the source from this byte range of `source` (the running slot inside a whole disk). */
  sourceRange?: ByteRange;
  /**
   * Finish an interrupted apply: before writing, check which operations the target already holds
   * (apply/resume.ts), and leave those alone. Their data is not needed: a seekable input
   * (applyPayload with a PayloadSource) does not fetch it; a plain stream is read past it.
   */
  resume?: boolean;
  /**
   * Decode worker threads (default: the FASTPATCH_DECODE_WORKERS environment variable, else one per
   * core, at most 4). Peak memory does not depend on it (MEMORY_BOUND).
   */
  decodeWorkers?: number;
  /** WASM build to hash with (tests run both). */
  build?: CoreBuild;
  onProgress?: (progress: ApplyProgress) => void;
  /** Progress of resume's scan of the target: bytes checked of the image. */
  onScanProgress?: (bytes: number, total: number) => void;
}

/** Bytes [offset, offset + length) of a file or device. */
export interface ByteRange {
  offset: number;
  length: number;
}

export interface ApplyProgress {
  payloadBytes: number;
  opsDone: number;
  opsTotal: number;
  /** Bytes of the image produced and verified so far (written, unless verifying only). */
  imageBytesDone: number;
  bytesWritten: number;
  targetSize: number;
}

export interface ApplyResult {
  version: string;
  targetSize: number;
  /** Size of the source image a delta was applied against; 0 for a full payload. */
  sourceSize: number;
  /** Hex block-list hash of the image, as signed. */
  targetHash: string;
  /** Id of the trusted key whose signature was accepted. */
  keyId: string;
  operations: number;
  payloadBytes: number;
  bytesWritten: number;
  seconds: number;
  /** With `resume`: the operations found already on the target, left alone, and their image bytes. */
  resumed?: { operationsSkipped: number; bytesSkipped: number };
}

const noop = () => {};

/**
 * Streaming applier: feed it the payload's bytes in any chunking with push(), then call finish().
 *
 * Order of trust: nothing is opened for writing until the header, manifest and signature block are
 * complete, structurally valid and signed by a trusted key; the target's size is checked before
 * the first write; each operation's data is checked against its signed hash before it is decoded,
 * and its output against the signed output hash before it is written; finish() fsyncs and checks
 * the whole image against the signed image hash. Always call close() (applyPayload does).
 */
export class PayloadApplier {
  private readonly reader: PayloadReader;
  private readonly core: WasmCore;
  private head: PayloadHead | undefined;
  private keyId = '';
  private target: OpenImage | undefined;
  /** Writes to a block device target, past the page cache (io/direct-writer.ts); none for a file. */
  private direct: DirectWriter | undefined;
  private source: OpenImage | undefined;
  /** The source as given (the whole file or device, or its range), for the overlap check. */
  private sourceExtent: OpenImage | undefined;
  /** A target created by this applier starts all zero, so ZERO operations need not write. */
  private targetIsFresh = false;
  /** The target path when this applier created the file: removed by close() if nothing was written to it. */
  private createdPath: string | undefined;
  /** True once any byte was written to the target; and once finish() succeeded. */
  private wroteAny = false;
  private finished = false;
  /** Earlier target blocks, when an operation's dictionary takes some (target-blocks.ts). */
  private targetBlocks: TargetBlocks | undefined;
  private readonly inflight: Promise<void>[] = [];
  /** Bytes each operation in `inflight` holds (data, source and output), and their sum. */
  private readonly inflightSizes: number[] = [];
  private inflightBytes = 0;
  private readonly writes: Promise<void>[] = [];
  /** The target blocks each write in flight covers, [start, end): what a target dictionary may have to wait for. */
  private readonly writeRanges = new Map<Promise<void>, [number, number]>();
  /** Every block before this one is verified and its write issued (operations complete in order). */
  private verifiedEnd = 0;
  private readonly verifiedWaiters: { end: number; resolve: () => void }[] = [];
  /** Bytes written since the last flush started (FLUSH_EVERY), and the flush in flight. */
  private unflushed = 0;
  private flushing: Promise<void> | undefined;
  /**
   * Collects the buffers the pools let go of (runtime/collect.ts). They are shared memory, which V8 does
   * not count towards collecting: without this, memory a pool dropped (a size no longer asked
   * for) would wait for a collection the JS heap's own growth may never call for.
   */
  private readonly garbage = new GarbageMeter();
  /** Buffers for the source blocks and outputs of operations (buffer-pool.ts). */
  private readonly buffers = new BufferPool(BUFFER_POOL_SIZE, BUFFER_POOL_BYTES, this.garbage);
  /** Buffers for the block digests of operations' outputs. */
  private readonly digestBuffers = new BufferPool(BUFFER_POOL_SIZE, Infinity, this.garbage);
  private tail: Promise<void> = Promise.resolve();
  /** Settles once the target is checked and open (accept()); rejects with what refused it. */
  private targetReady: Promise<void> | undefined;
  private failure: unknown;
  private root: BlockListHasher;
  private readonly pool: DecodePool;
  private readonly started = performance.now();
  private opsDone = 0;
  /** With `resume`: done[i] = 1 for the operations the target already holds. */
  private done: Uint8Array | undefined;
  private skippedBytes = 0;
  private skippedOps = 0;
  private imageBytesDone = 0;
  private bytesWritten = 0;

  constructor(private readonly options: ApplyOptions) {
    if (options.trustedKeys.length === 0) throw new TypeError('trustedKeys: at least one public key is needed');
    this.core = WasmCore.load(options.build);
    this.pool = new DecodePool(options.build ?? 'release', options.decodeWorkers);
    // The workers start now, not on the first operation: their start-up (~0.1 s of wall, more on a
    // busy machine) then runs beside the head's signature check and the target's checks instead of
    // before the first decode. A refused payload pays for it (close() waits for them to stop).
    this.pool.start();
    this.reader = new PayloadReader((header, manifest, signatures) => {
      this.keyId = verifyPayload(header, manifest, signatures, options.trustedKeys).keyId;
    }, new BufferPool(BUFFER_POOL_SIZE, BUFFER_POOL_BYTES, this.garbage));
    this.root = new BlockListHasher(this.core);
  }

  /** Feeds the next bytes of the payload. Resolves when the pipeline has room for more. */
  async push(chunk: Uint8Array): Promise<void> {
    this.throwIfFailed();
    this.reader.feed(chunk);
    // One unit at a time: startOperation waits while the pipeline is full, so the reader fills at
    // most one blob beyond the window.
    for (let event = this.reader.next(); event; event = this.reader.next()) {
      if (event.kind === 'head') await this.accept(event.head);
      else await this.startOperation(event.index, event.blob);
    }
  }

  /**
   * Where the next bytes of the payload go (PayloadReader.unfilled): a chunk read straight into it
   * and pushed is not copied. Empty once the payload is complete.
   */
  unfilled(): Uint8Array {
    return this.reader.unfilled();
  }

  /** Declares the end of the payload; waits for every write, fsyncs and checks the image. */
  async finish(): Promise<ApplyResult> {
    while (this.inflight.length > 0) await this.retireOldest();
    while (this.writes.length > 0) await this.writes.shift();
    // A refused target is reported before a truncated payload, as when it was checked first.
    await this.targetReady;
    this.throwIfFailed();
    this.reader.end();
    const head = this.head!;
    const m = head.manifest;
    await this.flushing;
    if (this.target) {
      try {
        await this.target.handle.sync();
      } catch (err) {
        throw ioError(`fsync ${this.target.path}`, err);
      }
    }
    // validateManifest made the operations write blocks 0, 1, 2, ... in order, so the digests of
    // their verified outputs, in order, are the image's. Skipped operations added none: then the
    // image is hashed as it now is on the target.
    const imageHash = this.skippedOps > 0 ? await hashOpenImage(this.core, this.target!, m.targetSize) : this.root.digest();
    if (!equal(imageHash, m.targetHash)) {
      throw new FastPatchError('HASH_MISMATCH', `finished image does not match the signed image hash (${hex(imageHash)} != ${hex(m.targetHash)})`);
    }
    this.finished = true;
    return {
      version: m.version,
      targetSize: m.targetSize,
      sourceSize: m.sourceSize,
      targetHash: hex(m.targetHash),
      keyId: this.keyId,
      operations: m.operations.length,
      payloadBytes: this.reader.offset,
      bytesWritten: this.bytesWritten,
      seconds: (performance.now() - this.started) / 1000,
      ...(this.done ? { resumed: { operationsSkipped: this.skippedOps, bytesSkipped: this.skippedBytes } } : {}),
    };
  }

  /** The head, once push() has read it (signature verified, manifest validated). */
  get payloadHead(): PayloadHead | undefined {
    return this.head;
  }

  /**
   * For a resumed apply fed from a seekable input: the byte ranges of the payload still needed
   * (the data of the operations not yet on the target), in order and coalesced. From then on,
   * push() must be fed exactly those bytes. Call right after the head has been pushed.
   */
  neededRanges(): ByteRange[] {
    const head = this.head;
    if (!head || !this.done) throw new Error('neededRanges: only after the head of a resumed apply');
    const done = this.done;
    this.reader.skipData((i) => done[i] === 1);
    const ranges: ByteRange[] = [];
    head.manifest.operations.forEach((op, i) => {
      if (done[i] === 1 || op.dataLength === 0) return;
      const offset = head.dataStart + op.dataOffset;
      const last = ranges[ranges.length - 1];
      if (last && last.offset + last.length === offset) last.length += op.dataLength;
      else ranges.push({ offset, length: op.dataLength });
    });
    return ranges;
  }

  /**
   * Lets operations already in flight finish (each was verified; an operation after a failure
   * writes nothing), then stops the decode workers and closes the target. Safe to call twice.
   */
  async close(): Promise<void> {
    await Promise.allSettled(this.inflight);
    await Promise.allSettled(this.writes);
    await this.targetReady?.catch(noop);
    await this.flushing?.catch(noop);
    await this.pool.close();
    const target = this.target;
    this.target = undefined;
    // A refused apply leaves no new empty file behind; one with bytes written stays, for --resume.
    if (target && this.createdPath !== undefined && !this.finished && !this.wroteAny) await removeCreatedTarget(this.createdPath, target);
    const direct = this.direct;
    this.direct = undefined;
    await direct?.close();
    await target?.handle.close();
    const source = this.source;
    this.source = undefined;
    await source?.handle.close();
    const targetBlocks = this.targetBlocks;
    this.targetBlocks = undefined;
    await targetBlocks?.close();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async accept(head: PayloadHead): Promise<void> {
    this.head = head; // signature already verified by the reader's authenticator
    if (hasTargetDictionaries(head.manifest)) {
      this.targetBlocks = this.options.target !== undefined ? targetBlocksFromTarget(() => this.target!) : await targetBlocksInTempFile(head.manifest);
    }
    checkReleases(head.manifest, this.options);
    // The source is opened and an existing target checked against it first: a target that is the
    // source is refused as such (USAGE), not as too small for the image. The source's checks cost
    // at most its real size, never the declared one.
    if (head.manifest.sourceSize > 0) await this.openSource(head);
    // The target's checks take a while (its identity, mounts and other names; creating a file):
    // operations are checked and decoded meanwhile, and each waits for the target before anything
    // grows with the declared size (its zero runs hashed) and before it writes (completeOperation).
    // A resumed apply needs the target first: it tells which operations to skip.
    const ready = this.openTarget(head);
    this.targetReady = ready;
    ready.catch((err: unknown) => (this.failure ??= err));
    if (this.options.resume) await ready;
  }

  /** The checks of the target, in order, and opening (or creating) it; see accept(). */
  private async openTarget(head: PayloadHead): Promise<void> {
    const size = head.manifest.targetSize;
    const range = this.options.targetRange;
    const existing = this.options.target === undefined ? undefined : await openExistingTarget(this.options.target, range);
    if (existing) this.target = existing;
    const existingRange = existing && range ? imageRange(existing, range.offset, range.length) : existing;
    // The bytes read and the bytes written must not meet, whatever names lead to them.
    if (this.sourceExtent && existingRange) await checkDisjoint(this.sourceExtent, existingRange);
    // Before anything whose cost grows with the declared size (target scan, hashing zero runs,
    // creating a file): the size must fit something real.
    await checkDeclaredSize(size, this.options);
    if (this.options.target === undefined) return;
    // Everything that can refuse the target is checked before a missing one is created, so that a
    // refused apply leaves no new file behind (and close() removes one nothing was written to).
    const opened = existing ?? (await createTarget(this.options.target, size));
    this.target = opened;
    if (!existing) this.createdPath = this.options.target;
    const target = range ? imageRange(opened, range.offset, range.length) : opened;
    this.target = target;
    this.targetIsFresh = target.created;
    if (target.size < size) {
      throw new FastPatchError('TARGET_TOO_SMALL', `target ${target.path} holds ${target.size} bytes, the image needs ${size}`);
    }
    if (existing) await checkOtherNamesFree(target);
    this.direct = await DirectWriter.open(target);
    if (this.options.resume && !target.created) {
      const onScan = this.options.onScanProgress;
      this.done = (await scanTarget(this.core, target, head.manifest, onScan && ((bytes) => onScan(bytes, size)))).done;
    } else if (this.options.resume) {
      this.done = new Uint8Array(head.manifest.operations.length);
    }
  }

  /** Opens a delta's source read-only and checks it before the target is opened. */
  private async openSource(head: PayloadHead): Promise<void> {
    const m = head.manifest;
    if (this.options.source === undefined) {
      throw new FastPatchError('USAGE', `this is a delta payload made from a ${m.sourceSize}-byte source image: give the image it applies to (--source)`);
    }
    const opened = await openImageForRead(this.options.source, 'source image', 'give the image the delta was made from (--source)');
    this.source = opened;
    const range = this.options.sourceRange;
    const source = range ? imageRange(opened, range.offset, range.length) : opened;
    // An image file must be the source image exactly; a partition (a device, or a range of a disk)
    // may be larger than the image it holds, whose bytes are its first sourceSize.
    const exact = !range && !source.isBlockDevice;
    if (exact ? source.size !== m.sourceSize : source.size < m.sourceSize) {
      throw new FastPatchError('SOURCE_MISMATCH', `source ${source.path} holds ${source.size} bytes, this delta was made from a source of ${m.sourceSize}${needsRelease(m)}`);
    }
    this.sourceExtent = source;
    this.source = imageRange(source, 0, m.sourceSize);
    if (this.options.checkSource) {
      const hash = await hashOpenImage(this.core, this.source, m.sourceSize);
      if (!equal(hash, m.sourceHash)) {
        throw new FastPatchError('SOURCE_MISMATCH', `source ${source.path} is not the image this delta was made from (hash ${hex(hash)}, expected ${hex(m.sourceHash)})${needsRelease(m)}`);
      }
    }
  }

  private async startOperation(index: number, blob: Uint8Array): Promise<void> {
    const m = this.head!.manifest;
    const op = m.operations[index]!;
    if (this.done?.[index] === 1) return this.skipOperation(op, blob);
    // Room in the window first, with this operation's blob already read: the moment the oldest
    // operation retires, this one goes to the free worker (reading its blob only then left a worker
    // idle for the read, ~5 ms per 16 MiB operation). The window then holds what it held when the
    // operation was admitted after being sent, and the blob read meanwhile is the one the memory
    // bound counts as being filled.
    while (this.inflight.length > PIPELINE_DEPTH - 1 || (this.inflight.length > 1 && this.inflightBytes > PIPELINE_BYTES)) await this.retireOldest();
    // Data hash, inflate and output digests run in a worker; the blob moves there by transfer. The
    // data hash is copied: as a view it would drag the whole manifest buffer along.
    const outputLength = extentBytes(op.dstExtents, m.targetSize);
    let decoded: Promise<Decoded | undefined>;
    // Buffers the worker fills: the output of an operation that makes one, and the digests. Taken
    // now, with the source's, so that the window counts the buffers as they are (a pooled buffer
    // may be larger than asked for).
    const out = DECODED_OPS.has(op.type) ? this.buffers.take(outputLength) : undefined;
    const hasDictionary = (op.targetDictionary?.length ?? 0) > 0;
    const sourceBytes = op.sourceHash ? blockBytes(op.srcExtents) : 0;
    const dictionaryBytes = blockBytes(op.targetDictionary ?? []);
    // A SOURCE_ZSTD's dictionary is its source blocks, then its target blocks: one buffer, which
    // the worker hands to zstd as it is (joining the two cost an allocation and a copy each time).
    const sourceBuffer = SOURCE_OPS.has(op.type) && (op.sourceHash || hasDictionary) ? this.buffers.take(sourceBytes + dictionaryBytes) : undefined;
    // Counted now: the buffers are transferred to a worker (and read as empty here) once sent.
    // A ZERO operation holds no memory, but counting its length here too was measured to keep peak
    // memory lower (fewer data operations in flight beside it) at a small cost in speed. A
    // SOURCE_COPY's output is its source buffer: counted once.
    const ownOutput = out ? out.buffer.byteLength : op.type === OpType.SOURCE_COPY && sourceBuffer ? 0 : outputLength;
    const bytes = blob.buffer.byteLength + ownOutput + (sourceBuffer?.buffer.byteLength ?? 0);
    const lent = () => ({
      ...(out ? { out } : {}),
      digests: this.digestBuffers.take(Math.ceil(outputLength / BLOCK_SIZE) * DIGEST_SIZE),
    });
    // A target dictionary is earlier blocks of the image, gathered once the operations that write
    // them are verified, and checked in the worker against its signed hash.
    const targetDictionary = hasDictionary ? this.targetDictionary(op, this.tail, sourceBuffer!.subarray(sourceBytes)) : Promise.resolve({});
    if (sourceBuffer) {
      // Read here, checked in the worker against the signed source hash before it is used.
      const sourceHash = op.sourceHash?.slice();
      const source = op.sourceHash ? readExtents(this.source!, op.srcExtents, BLOCK_SIZE, () => sourceBuffer.subarray(0, sourceBytes)) : Promise.resolve(sourceBuffer.subarray(0, 0));
      decoded = Promise.all([source, targetDictionary]).then(([source, dictionary]) =>
        this.pool.decode({
          index, type: op.type, blob, dataHash: op.dataHash?.slice(), outputLength,
          source, ...(sourceHash ? { sourceHash } : {}), sourceExtents: describeExtents(op.srcExtents), ...dictionary, ...lent(),
        }),
      );
    } else if (op.dataHash) {
      decoded = this.pool.decode({ index, type: op.type, blob, dataHash: op.dataHash.slice(), outputLength, ...lent() });
    } else {
      decoded = Promise.resolve(undefined);
    }
    // A wrong source is reported with the release the delta needs, when the manifest names it.
    decoded = decoded.catch((err: unknown) => {
      if (err instanceof FastPatchError && err.code === 'SOURCE_MISMATCH' && m.sourceVersion !== '') throw new FastPatchError('SOURCE_MISMATCH', `${err.message}${needsRelease(m)}`);
      throw err;
    });
    decoded.catch(noop); // awaited in order below; this only marks the rejection as handled
    const step = this.tail.then(() => this.completeOperation(index, op, decoded));
    step.catch((err) => (this.failure ??= err));
    this.tail = step.catch(noop);
    this.inflight.push(step);
    this.inflightSizes.push(bytes);
    this.inflightBytes += bytes;
  }

  /**
   * The target blocks `op` takes as dictionary, read into `into` once the operations that write
   * them are verified and those writes done. Not every operation before it (`before`): a
   * dictionary names blocks far back more often than the last ones, and waiting for all drained
   * the pipeline before each such operation. `before` still ends the wait if an earlier one fails.
   */
  private async targetDictionary(op: Operation, before: Promise<void>, into: Uint8Array): Promise<{ targetDictionary: Uint8Array; targetDictionaryHash: Uint8Array }> {
    const extents = op.targetDictionary!;
    const end = extents.reduce((n, e) => Math.max(n, e.startBlock + e.blockCount), 0);
    await Promise.race([before, this.verifiedUpTo(end)]);
    this.throwIfFailed();
    const overlapping = [...this.writeRanges].filter(([, [s, e]]) => extents.some((x) => x.startBlock < e && s < x.startBlock + x.blockCount));
    await Promise.all(overlapping.map(([write]) => write));
    this.throwIfFailed();
    const targetDictionary = await this.targetBlocks!.read(extents, into);
    return { targetDictionary, targetDictionaryHash: op.targetDictionaryHash!.slice() };
  }

  /** Resolves once every block before `end` is verified and its write issued. */
  private verifiedUpTo(end: number): Promise<void> {
    if (this.verifiedEnd >= end) return Promise.resolve();
    return new Promise((resolve) => this.verifiedWaiters.push({ end, resolve }));
  }

  /** Operations up to block `end` are verified and written or being written: wakes the dictionaries waiting for them. */
  private advanceVerified(end: number): void {
    this.verifiedEnd = end;
    for (let i = this.verifiedWaiters.length - 1; i >= 0; i--) {
      const w = this.verifiedWaiters[i]!;
      if (w.end <= end) {
        this.verifiedWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** An operation resume found already on the target: nothing to check, decode or write. */
  private skipOperation(op: Operation, blob: Uint8Array): void {
    const length = extentBytes(op.dstExtents, this.head!.manifest.targetSize);
    this.reader.recycle(blob);
    // Progress is reported in operation order, after the operations before it.
    const step = this.tail.then(async () => {
      this.advanceVerified(endBlockOf(op));
      this.skippedOps++;
      this.skippedBytes += length;
      this.reportDone(length);
    });
    step.catch((err) => (this.failure ??= err));
    this.tail = step.catch(noop);
  }

  /** Waits for the oldest operation in flight and takes it out of the window. */
  private async retireOldest(): Promise<void> {
    await this.inflight.shift();
    this.inflightBytes -= this.inflightSizes.shift()!;
  }

  /** Runs strictly in operation order: checks the output hash, extends the image hash, writes. */
  private async completeOperation(index: number, op: Operation, decoded: Promise<Decoded | undefined>): Promise<void> {
    if (this.failure !== undefined) return;
    await this.targetReady;
    const m = this.head!.manifest;
    const result = await decoded;
    const length = extentBytes(op.dstExtents, m.targetSize);
    const opHash = this.core.sha256();
    const take = (digests: Uint8Array) => {
      opHash.update(digests);
      this.root.updateDigests(digests);
    };
    if (result) {
      take(result.digests);
      this.digestBuffers.give(result.digests.buffer);
      if (result.spareDigests) this.digestBuffers.give(result.spareDigests.buffer);
    } else {
      feedZeroDigests(this.core, length, take);
    }
    if (!equal(opHash.digest(), op.outputHash)) {
      throw new FastPatchError('HASH_MISMATCH', `operation ${index} (${OP_NAMES[op.type]}): output does not match its signed hash`);
    }
    // Verified: later operations' target dictionaries may take it (verify keeps what they name).
    if (this.options.target === undefined) await this.targetBlocks?.keep(op.dstExtents, result?.output);
    // A REPLACE's output is its blob, a SOURCE_COPY's its source; every other output, source and
    // unused buffer is read, patched or inflated into again. What the write does not need goes back
    // now: a write holds its output only (MEMORY_BOUND).
    const recycle = () => {
      if (!result) return;
      if (result.output.buffer === result.blob.buffer) this.reader.recycle(result.blob);
      else this.buffers.give(result.output.buffer);
    };
    this.garbage.operation();
    if (result) {
      if (result.blob.buffer !== result.output.buffer) this.reader.recycle(result.blob);
      if (result.source && result.source.buffer !== result.output.buffer) this.buffers.give(result.source.buffer);
      if (result.spare) this.buffers.give(result.spare.buffer);
    }
    if (this.options.target !== undefined) {
      const write = this.writeExtents(op, result?.output, length).then(() => {
        recycle();
        this.flushSoon(result || !this.targetIsFresh ? length : 0);
      });
      write.catch((err) => (this.failure ??= err));
      this.writes.push(write);
      this.writeRanges.set(write, [op.dstExtents[0]!.startBlock, endBlockOf(op)]);
      void write.finally(() => this.writeRanges.delete(write)).catch(noop);
      this.advanceVerified(endBlockOf(op));
      if (this.writes.length > WRITE_DEPTH) await this.writes.shift();
    } else {
      recycle();
      this.advanceVerified(endBlockOf(op));
    }
    this.reportDone(length);
  }

  /**
   * Starts a datasync of what was written so far once FLUSH_EVERY bytes wait and no flush runs. The
   * device then writes back while the cores decode: finish()'s fsync has only the rest to do.
   * A failed flush fails the apply (its data may be lost; a later fsync need not say so).
   */
  private flushSoon(bytes: number): void {
    this.unflushed += bytes;
    const target = this.target;
    if (FLUSH_EVERY <= 0 || this.flushing || this.unflushed < FLUSH_EVERY || !target) return;
    this.unflushed = 0;
    const flush = target.handle.datasync().then(
      () => {
        this.flushing = undefined;
      },
      (err: unknown) => {
        throw ioError(`fsync ${target.path}`, err);
      },
    );
    flush.catch((err: unknown) => (this.failure ??= err));
    this.flushing = flush;
  }

  private reportDone(length: number): void {
    const m = this.head!.manifest;
    this.opsDone++;
    this.imageBytesDone += length;
    this.options.onProgress?.({
      imageBytesDone: this.imageBytesDone,
      payloadBytes: this.reader.offset,
      opsDone: this.opsDone,
      opsTotal: m.operations.length,
      bytesWritten: this.bytesWritten,
      targetSize: m.targetSize,
    });
  }

  private async writeExtents(op: Operation, output: Uint8Array | undefined, length: number): Promise<void> {
    const target = this.target!;
    const size = this.head!.manifest.targetSize;
    let from = 0;
    for (const e of op.dstExtents) {
      const start = e.startBlock * BLOCK_SIZE;
      const bytes = extentBytes([e], size);
      if (output) {
        this.wroteAny = true;
        if (this.direct) await this.direct.write(output.subarray(from, from + bytes), start);
        else await writeFully(target, output.subarray(from, from + bytes), start);
      } else if (!this.targetIsFresh) {
        this.wroteAny = true;
        for (let done = 0; done < bytes; done += ZERO_CHUNK.length) {
          const zeros = ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, bytes - done));
          if (this.direct) await this.direct.write(zeros, start + done);
          else await writeFully(target, zeros, start + done);
        }
      }
      from += bytes;
      this.bytesWritten += bytes;
    }
    if (from !== length) throw new Error('unreachable: extent lengths disagree');
  }
}

/** The first extents of a list as text, for error messages: "1200+16, 5000+3 and 7 more". */
function describeExtents(extents: readonly Extent[]): string {
  const shown = extents.slice(0, 3).map((e) => `${e.startBlock}+${e.blockCount}`).join(', ');
  return extents.length > 3 ? `${shown} and ${extents.length - 3} more` : shown;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Applies (or with no target, verifies) a payload: an async stream of chunks, or a seekable
 * payload (io/payload-source.ts), from which a resumed apply fetches only what the target lacks.
 * Throws FastPatchError; the target is closed whatever happens.
 */
export async function applyPayload(input: PayloadInput, options: ApplyOptions): Promise<ApplyResult> {
  const applier = new PayloadApplier(options);
  try {
    if (isSeekable(input) && options.resume && options.target !== undefined) {
      // The header says how long the head is; the head is checked (signature, manifest, and the
      // target scanned) before any data is fetched.
      const first = new Uint8Array(HEADER_SIZE);
      let filled = 0;
      for await (const chunk of readRange(input, 0, HEADER_SIZE)) {
        first.set(chunk, filled);
        filled += chunk.length;
      }
      const header = decodeHeader(first);
      if ('need' in header) throw new Error('unreachable: a whole header was read');
      await applier.push(first);
      for await (const chunk of readRange(input, HEADER_SIZE, header.manifestSize + header.signaturesSize)) await applier.push(chunk);
      for (const range of applier.neededRanges()) {
        for await (const chunk of readRange(input, range.offset, range.length)) await applier.push(chunk);
      }
      await applier.push(new Uint8Array(0)); // the skipped operations after the last range
    } else {
      // Each next() says where the payload's next bytes go: a file's are read straight there
      // (io/input.ts, fileChunks); other inputs ignore it, and their chunks are copied.
      const chunks = (isSeekable(input) ? input.read(0) : input)[Symbol.asyncIterator]();
      try {
        for (let r = await chunks.next(); r.done !== true; r = await chunks.next(applier.unfilled())) await applier.push(r.value);
      } catch (err) {
        await chunks.return?.();
        throw err;
      }
    }
    return await applier.finish();
  } finally {
    await applier.close();
  }
}

/** The block after an operation's last destination block (its extents follow one another). */
function endBlockOf(op: Operation): number {
  const last = op.dstExtents[op.dstExtents.length - 1]!;
  return last.startBlock + last.blockCount;
}
