import { FastPatchError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import { HEADER_SIZE } from '../format/constants.js';
import { decodeHeader, type Header } from '../format/header.js';
import { decodeManifest, validateManifest, type Manifest } from '../format/manifest.js';
import { decodeSignatures, type SignatureEntry } from '../format/signatures.js';

/** The signed part of a payload, as read from the front of the stream. */
export interface PayloadHead {
  header: Header;
  headerBytes: Uint8Array;
  manifest: Manifest;
  manifestBytes: Uint8Array;
  signatures: SignatureEntry[];
  /** Offset of the data section from the start of the payload. */
  dataStart: number;
}

/** What the reader has for its caller after a push. */
export type ReaderEvent =
  | { kind: 'head'; head: PayloadHead }
  | { kind: 'data'; index: number; blob: Uint8Array };

/**
 * Checks the signed bytes of a payload before its manifest is even parsed; throws to refuse.
 * Receives the raw header and manifest bytes and the signature entries.
 */
export type Authenticator = (headerBytes: Uint8Array, manifestBytes: Uint8Array, signatures: SignatureEntry[]) => void;

/**
 * Recycled blob buffers a reader keeps by default. An applier passes a pool sized to its pipeline
 * instead (apply/applier.ts), so that a payload's blobs are read into the same buffers from start
 * to end. Blob buffers alive: those in flight, one being filled, and the pool's.
 */
export const BLOB_POOL_SIZE = 4;

/**
 * Incremental payload parser: bytes in, in any chunking; out come the head (header, manifest and
 * signature block) and then each operation's data blob, in order. It holds the head, the blob being
 * filled and the recycled blob buffers its pool keeps, and each allocation is sized by a length
 * the header or manifest bounded first.
 *
 * Trust: once the signature block is complete, `authenticate` (when given) sees the raw signed
 * bytes; only if it returns is the manifest decoded and validated, so a changed manifest byte is
 * reported as a bad signature, not as whatever the parser would make of it.
 * Throws FastPatchError('CORRUPT_PAYLOAD'); `end()` throws 'TRUNCATED_PAYLOAD'.
 */
export class PayloadReader {
  /**
   * @param blobPool where recycle() keeps blob buffers and later blobs are read into (buffer-pool.ts).
   */
  constructor(private readonly authenticate?: Authenticator, private readonly blobPool = new BufferPool(BLOB_POOL_SIZE)) {}

  private stage: 'header' | 'manifest' | 'signatures' | 'data' | 'done' = 'header';
  private buf: Uint8Array = new Uint8Array(HEADER_SIZE);
  private filled = 0;
  private header: Header | undefined;
  private headerBytes: Uint8Array | undefined;
  private manifestBytes: Uint8Array | undefined;
  private manifest: Manifest | undefined;
  private opIndex = 0;
  private dataStart = -1;
  /** Operations whose data the input leaves out (resume); see skipData(). */
  private skipped: ((index: number) => boolean) | undefined;
  /** The chunk being consumed by next(), and how far. */
  private input: Uint8Array = new Uint8Array(0);
  private inputAt = 0;
  /** Bytes consumed so far. */
  offset = 0;

  /** Bytes still needed to finish the current unit (header, manifest, signatures, or blob). */
  get need(): number {
    return this.stage === 'done' ? 0 : this.buf.length - this.filled;
  }

  /**
   * Makes `chunk` the input of next(). The previous chunk must be used up. The chunk is copied
   * from (unless it was read into unfilled()), never kept.
   */
  feed(chunk: Uint8Array): void {
    if (this.inputAt < this.input.length) throw new Error('feed: the previous chunk is not used up; call next() until it returns null');
    this.input = chunk;
    this.inputAt = 0;
  }

  /**
   * Consumes input until one unit completes and returns it, or returns null when the input is used
   * up first. One unit at a time, so the caller can wait (back-pressure) before the next blob's
   * buffer is even allocated.
   */
  next(): ReaderEvent | null {
    while (this.inputAt < this.input.length || (this.stage === 'data' && this.need === 0)) {
      if (this.stage === 'done') {
        throw new FastPatchError('CORRUPT_PAYLOAD', `unexpected bytes after the end of the payload at offset ${this.offset}`);
      }
      const n = Math.min(this.need, this.input.length - this.inputAt);
      // Bytes read straight into the unit's buffer (unfilled()) are where they belong already.
      const inPlace = this.input.buffer === this.buf.buffer && this.input.byteOffset + this.inputAt === this.buf.byteOffset + this.filled;
      if (!inPlace) this.buf.set(this.input.subarray(this.inputAt, this.inputAt + n), this.filled);
      this.filled += n;
      this.inputAt += n;
      this.offset += n;
      if (this.need === 0) {
        const event = this.completeUnit();
        if (event) return event;
      }
    }
    return null;
  }

  /**
   * Where the next bytes of the payload go: the rest of the unit being read (header, manifest,
   * signatures, or an operation's data blob), empty once the payload is complete. Reading the
   * input straight into it and feeding the view read (a prefix of it) saves copying those bytes;
   * valid until the next feed().
   */
  unfilled(): Uint8Array {
    return this.stage === 'done' ? this.buf.subarray(0, 0) : this.buf.subarray(this.filled);
  }

  /** feed() and next() until the chunk is used up: every unit it completes, in order. */
  push(chunk: Uint8Array): ReaderEvent[] {
    this.feed(chunk);
    const events: ReaderEvent[] = [];
    for (let e = this.next(); e; e = this.next()) events.push(e);
    return events;
  }

  /** Declares the end of the stream. Throws FastPatchError('TRUNCATED_PAYLOAD') if anything is missing. */
  end(): void {
    if (this.stage !== 'done') {
      throw new FastPatchError('TRUNCATED_PAYLOAD', `payload truncated at byte ${this.offset}: ${this.need} more bytes of the ${this.stage === 'data' ? `data of operation ${this.opIndex}` : this.stage} expected`);
    }
  }

  /**
   * From now on the input leaves out the data of the operations `skipped` names (a resumed apply
   * fetches only what the target still needs): each of them yields an empty blob at once. Call it
   * after the head event, before any data byte is fed.
   */
  skipData(skipped: (index: number) => boolean): void {
    if (this.stage === 'header' || this.stage === 'manifest' || this.stage === 'signatures' || this.offset !== this.dataStart) throw new Error('skipData: only before the first data byte');
    this.skipped = skipped;
    this.nextBlob();
  }

  /**
   * Hands back the buffer of a data blob this reader emitted, once the caller is done with it (and
   * with anything sharing its memory), so later blobs are read into it instead of fresh memory.
   */
  recycle(blob: Uint8Array): void {
    if (blob.byteLength > 0) this.blobPool.give(blob.buffer);
  }

  private expect(size: number): void {
    this.buf = new Uint8Array(size);
    this.filled = 0;
  }

  /**
   * Like expect(), for a data blob: a view of exactly `size` bytes on a recycled buffer that holds
   * it, else on a new buffer of exactly `size` (a length the manifest bounded).
   */
  private expectBlob(size: number): void {
    this.buf = this.blobPool.take(size);
    this.filled = 0;
  }

  /** Moves past a completed unit; returns the event it makes, if any. */
  private completeUnit(): ReaderEvent | undefined {
    switch (this.stage) {
      case 'header': {
        const header = decodeHeader(this.buf);
        if ('need' in header) throw new Error('unreachable: header buffer is complete');
        this.header = header;
        this.headerBytes = this.buf;
        this.stage = 'manifest';
        this.expect(header.manifestSize);
        return;
      }
      case 'manifest':
        this.manifestBytes = this.buf;
        this.stage = 'signatures';
        this.expect(this.header!.signaturesSize);
        return;
      case 'signatures': {
        const signatures = decodeSignatures(this.buf);
        this.authenticate?.(this.headerBytes!, this.manifestBytes!, signatures);
        this.manifest = decodeManifest(this.manifestBytes!);
        validateManifest(this.manifest, this.header!.dataSize, this.header!.version);
        const event: ReaderEvent = {
          kind: 'head',
          head: {
            header: this.header!,
            headerBytes: this.headerBytes!,
            manifest: this.manifest!,
            manifestBytes: this.manifestBytes!,
            signatures,
            dataStart: this.offset,
          },
        };
        this.stage = 'data';
        this.dataStart = this.offset;
        this.nextBlob();
        return event;
      }
      case 'data': {
        const event: ReaderEvent = { kind: 'data', index: this.opIndex, blob: this.buf };
        this.opIndex++;
        this.nextBlob();
        return event;
      }
      case 'done':
        return;
    }
  }

  /** Moves to the next operation that carries data; operations without data produce an empty blob event. */
  private nextBlob(): void {
    const ops = this.manifest!.operations;
    if (this.opIndex >= ops.length) {
      this.stage = 'done';
      this.expect(0);
      return;
    }
    this.expectBlob(this.skipped?.(this.opIndex) ? 0 : ops[this.opIndex]!.dataLength);
  }
}
