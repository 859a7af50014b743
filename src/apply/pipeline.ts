/**
 * The pipeline of one apply: operations in manifest order, each admitted into a window bounded in
 * operations and bytes (limits.ts), its source blocks and target dictionary read, its data checked,
 * decoded and its output hashed in a decode worker (decode-pool.ts), then, strictly in order, its
 * output checked against the signed hash, added to the image hash and written while later ones
 * decode. Buffers come from pools and go back once written (buffer-pool.ts). It runs only after
 * the head is trusted and the images are open or being checked (images.ts); applier.ts wires it.
 */
import { sameBytes } from '../bytes.js';
import { ioError, FastPatchError } from '../errors.js';
import { BLOCK_SIZE, DIGEST_SIZE, OP_NAMES, OpType, SOURCE_OPS } from '../format/constants.js';
import { blockBytes, extentBytes, type Extent, type Manifest, type Operation } from '../format/manifest.js';
import { readExtents, writeFully } from '../io/device.js';
import type { GarbageMeter } from '../runtime/collect.js';
import { BlockListHasher } from '../wasm/block-list.js';
import type { WasmCore } from '../wasm/core.js';
import { feedZeroDigests } from '../wasm/zero-digests.js';
import { BufferPool } from './buffer-pool.js';
import type { Decoded } from './decode.js';
import { DecodePool } from './decode-pool.js';
import type { ApplyImages } from './images.js';
import { BUFFER_POOL_BYTES, BUFFER_POOL_SIZE, FLUSH_EVERY, PIPELINE_BYTES, PIPELINE_DEPTH, WRITE_DEPTH, needsRelease } from './limits.js';
import type { ApplyOptions } from './options.js';
import type { PayloadReader } from './reader.js';

/** Operation types whose output is made by decoding into a buffer of the main thread's (decode.ts). */
const DECODED_OPS: ReadonlySet<number> = new Set([OpType.SOURCE_DIFF, OpType.REPLACE_DEFLATE, OpType.REPLACE_ZSTD, OpType.SOURCE_ZSTD]);

/** Reused 1 MiB of zeros for writing ZERO operations. */
const ZERO_CHUNK = new Uint8Array(1024 * 1024);

const noop = () => {};

export class OperationPipeline {
  /** The verified manifest; set once the head is accepted, before the first start(). */
  manifest!: Manifest;
  /** The first failure of any operation, write, flush or of the target's checks. */
  failure: unknown;
  /** True once any byte was written to the target. */
  wroteAny = false;
  opsDone = 0;
  imageBytesDone = 0;
  bytesWritten = 0;
  skippedOps = 0;
  skippedBytes = 0;
  /** Block-list hash of the verified outputs, in block order: the image's (finish()). */
  readonly root: BlockListHasher;
  private readonly pool: DecodePool;
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
  /** Buffers for the source blocks and outputs of operations (buffer-pool.ts). */
  private readonly buffers: BufferPool;
  /** Buffers for the block digests of operations' outputs. */
  private readonly digestBuffers: BufferPool;
  private tail: Promise<void> = Promise.resolve();

  /**
   * @param garbage collects the buffers the pools let go of (runtime/collect.ts): they are shared
   *   memory, which V8 does not count towards collecting.
   */
  constructor(
    private readonly options: ApplyOptions,
    private readonly core: WasmCore,
    private readonly reader: PayloadReader,
    private readonly images: ApplyImages,
    private readonly garbage: GarbageMeter,
  ) {
    this.buffers = new BufferPool(BUFFER_POOL_SIZE, BUFFER_POOL_BYTES, garbage);
    this.digestBuffers = new BufferPool(BUFFER_POOL_SIZE, Infinity, garbage);
    this.pool = new DecodePool(options.build ?? 'release', options.decodeWorkers);
    // The workers start now, not on the first operation: their start-up (~0.1 s of wall, more on a
    // busy machine) then runs beside the head's signature check and the target's checks instead of
    // before the first decode. A refused payload pays for it (close() waits for them to stop).
    this.pool.start();
    this.root = new BlockListHasher(core);
  }

  throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits for every operation and write to finish. */
  async drain(): Promise<void> {
    while (this.inflight.length > 0) await this.retireOldest();
    while (this.writes.length > 0) await this.writes.shift();
  }

  /** Waits for the flush in flight, if any (rejects if it failed). */
  async flushed(): Promise<void> {
    await this.flushing;
  }

  /**
   * Lets operations already in flight finish (each was verified; an operation after a failure
   * writes nothing), then stops the decode workers. Safe to call twice.
   */
  async close(): Promise<void> {
    await Promise.allSettled(this.inflight);
    await Promise.allSettled(this.writes);
    await this.flushing?.catch(noop);
    await this.pool.close();
  }

  /** Admits operation `index`, whose data is `blob`: waits for room in the window, then sends it off. */
  async start(index: number, blob: Uint8Array): Promise<void> {
    const m = this.manifest;
    const op = m.operations[index]!;
    if (this.images.done?.[index] === 1) return this.skip(op, blob);
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
      const source = op.sourceHash ? readExtents(this.images.source!, op.srcExtents, BLOCK_SIZE, () => sourceBuffer.subarray(0, sourceBytes)) : Promise.resolve(sourceBuffer.subarray(0, 0));
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
    const targetDictionary = await this.images.targetBlocks!.read(extents, into);
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
  private skip(op: Operation, blob: Uint8Array): void {
    const length = extentBytes(op.dstExtents, this.manifest.targetSize);
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
    await this.images.ready;
    const m = this.manifest;
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
    if (!sameBytes(opHash.digest(), op.outputHash)) {
      throw new FastPatchError('HASH_MISMATCH', `operation ${index} (${OP_NAMES[op.type]}): output does not match its signed hash`);
    }
    // Verified: later operations' target dictionaries may take it (verify keeps what they name).
    if (this.options.target === undefined) await this.images.targetBlocks?.keep(op.dstExtents, result?.output);
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
        this.flushSoon(result || !this.images.targetIsFresh ? length : 0);
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
    const target = this.images.target;
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
    const m = this.manifest;
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
    const target = this.images.target!;
    const size = this.manifest.targetSize;
    let from = 0;
    for (const e of op.dstExtents) {
      const start = e.startBlock * BLOCK_SIZE;
      const bytes = extentBytes([e], size);
      if (output) {
        this.wroteAny = true;
        if (this.images.direct) await this.images.direct.write(output.subarray(from, from + bytes), start);
        else await writeFully(target, output.subarray(from, from + bytes), start);
      } else if (!this.images.targetIsFresh) {
        this.wroteAny = true;
        for (let done = 0; done < bytes; done += ZERO_CHUNK.length) {
          const zeros = ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, bytes - done));
          if (this.images.direct) await this.images.direct.write(zeros, start + done);
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

/** The block after an operation's last destination block (its extents follow one another). */
function endBlockOf(op: Operation): number {
  const last = op.dstExtents[op.dstExtents.length - 1]!;
  return last.startBlock + last.blockCount;
}
