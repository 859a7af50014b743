/**
 * The streaming applier: a payload's bytes in, in any chunking; verified writes out.
 *
 * Order of trust: nothing is opened for writing until the header, manifest and signature block are
 * complete, structurally valid and signed by a trusted key (reader.ts, sign/signer.ts); then the
 * releases, the source and the target are checked before the first write (images.ts); each
 * operation's data is checked against its signed hash before it is decoded, and its output against
 * the signed output hash before it is written (pipeline.ts); finish() fsyncs and checks the whole
 * image against the signed image hash.
 */
import { sameBytes } from '../bytes.js';
import { FastPatchError, ioError } from '../errors.js';
import { HEADER_SIZE } from '../format/constants.js';
import { decodeHeader } from '../format/header.js';
import { hex } from '../hex.js';
import { isSeekable, readRange, type PayloadInput } from '../io/payload-source.js';
import { GarbageMeter } from '../runtime/collect.js';
import { verifyPayload } from '../sign/signer.js';
import { WasmCore } from '../wasm/core.js';
import { BufferPool } from './buffer-pool.js';
import { hashOpenImage } from './hash-image.js';
import { ApplyImages } from './images.js';
import { BUFFER_POOL_BYTES, BUFFER_POOL_SIZE } from './limits.js';
import type { ApplyOptions, ApplyResult, ByteRange } from './options.js';
import { OperationPipeline } from './pipeline.js';
import { PayloadReader, type PayloadHead } from './reader.js';

export { DEFAULT_MAX_IMAGE_SIZE, PIPELINE_BYTES, PIPELINE_DEPTH, WRITE_DEPTH, memoryBound } from './limits.js';
export type { ApplyOptions, ApplyProgress, ApplyResult, ByteRange } from './options.js';

/**
 * Streaming applier: feed it the payload's bytes in any chunking with push(), then call finish().
 * Always call close() (applyPayload does).
 */
export class PayloadApplier {
  private readonly reader: PayloadReader;
  private readonly core: WasmCore;
  private readonly images: ApplyImages;
  private readonly pipeline: OperationPipeline;
  private head: PayloadHead | undefined;
  private keyId = '';
  private finished = false;
  private readonly started = performance.now();

  constructor(private readonly options: ApplyOptions) {
    if (options.trustedKeys.length === 0) throw new TypeError('trustedKeys: at least one public key is needed');
    this.core = WasmCore.load(options.build);
    const garbage = new GarbageMeter();
    this.reader = new PayloadReader((header, manifest, signatures) => {
      this.keyId = verifyPayload(header, manifest, signatures, options.trustedKeys).keyId;
    }, new BufferPool(BUFFER_POOL_SIZE, BUFFER_POOL_BYTES, garbage));
    this.images = new ApplyImages(options, this.core, (err) => (this.pipeline.failure ??= err));
    this.pipeline = new OperationPipeline(options, this.core, this.reader, this.images, garbage);
  }

  /** Feeds the next bytes of the payload. Resolves when the pipeline has room for more. */
  async push(chunk: Uint8Array): Promise<void> {
    this.pipeline.throwIfFailed();
    this.reader.feed(chunk);
    // One unit at a time: start() waits while the pipeline is full, so the reader fills at most one
    // blob beyond the window.
    for (let event = this.reader.next(); event; event = this.reader.next()) {
      if (event.kind === 'head') {
        this.head = event.head; // signature already verified by the reader's authenticator
        this.pipeline.manifest = event.head.manifest;
        await this.images.accept(event.head);
      } else {
        await this.pipeline.start(event.index, event.blob);
      }
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
    const pipeline = this.pipeline;
    await pipeline.drain();
    // A refused target is reported before a truncated payload, as when it was checked first.
    await this.images.ready;
    pipeline.throwIfFailed();
    this.reader.end();
    const m = this.head!.manifest;
    await pipeline.flushed();
    const target = this.images.target;
    if (target) {
      try {
        await target.handle.sync();
      } catch (err) {
        throw ioError(`fsync ${target.path}`, err);
      }
    }
    // validateManifest made the operations write blocks 0, 1, 2, ... in order, so the digests of
    // their verified outputs, in order, are the image's. Skipped operations added none: then the
    // image is hashed as it now is on the target.
    const imageHash = pipeline.skippedOps > 0 ? await hashOpenImage(this.core, target!, m.targetSize) : pipeline.root.digest();
    if (!sameBytes(imageHash, m.targetHash)) {
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
      bytesWritten: pipeline.bytesWritten,
      seconds: (performance.now() - this.started) / 1000,
      ...(this.images.done ? { resumed: { operationsSkipped: pipeline.skippedOps, bytesSkipped: pipeline.skippedBytes } } : {}),
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
    const done = this.images.done;
    if (!head || !done) throw new Error('neededRanges: only after the head of a resumed apply');
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
   * writes nothing), then stops the decode workers and closes the images. Safe to call twice.
   */
  async close(): Promise<void> {
    await this.pipeline.close();
    await this.images.close(this.finished || this.pipeline.wroteAny);
  }
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
