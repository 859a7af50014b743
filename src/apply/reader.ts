import { FastPatchError } from '../errors.js';
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

/** Cap on recycled blob buffers kept; more than the applier ever has out at once (PIPELINE_DEPTH + 2). */
const BLOB_POOL_SIZE = 8;

/**
 * Incremental payload parser: bytes in, in any chunking; out come the head (header, manifest and
 * signature block) and then each operation's data blob, in order. It holds the head, the blob being
 * filled and at most BLOB_POOL_SIZE recycled blob buffers, and each allocation is sized by a length
 * the header or manifest bounded first.
 *
 * Trust: once the signature block is complete, `authenticate` (when given) sees the raw signed
 * bytes; only if it returns is the manifest decoded and validated, so a changed manifest byte is
 * reported as a bad signature, not as whatever the parser would make of it.
 * Throws FastPatchError('CORRUPT_PAYLOAD'); `end()` throws 'TRUNCATED_PAYLOAD'.
 */
export class PayloadReader {
  constructor(private readonly authenticate?: Authenticator) {}

  private stage: 'header' | 'manifest' | 'signatures' | 'data' | 'done' = 'header';
  private buf: Uint8Array = new Uint8Array(HEADER_SIZE);
  private filled = 0;
  private header: Header | undefined;
  private headerBytes: Uint8Array | undefined;
  private manifestBytes: Uint8Array | undefined;
  private manifest: Manifest | undefined;
  private opIndex = 0;
  /**
   * Blob buffers handed back by recycle(). Each fresh one gets the largest blob length seen so far
   * (a manifest length), so that buffers fit later blobs and no blob's pages are mapped afresh.
   */
  private readonly blobPool: ArrayBuffer[] = [];
  private blobCapacity = 0;
  /** Bytes consumed so far. */
  offset = 0;

  /** Bytes still needed to finish the current unit (header, manifest, signatures, or blob). */
  get need(): number {
    return this.stage === 'done' ? 0 : this.buf.length - this.filled;
  }

  /** Feeds a chunk; returns the units it completed, in order. The chunk is copied, never kept. */
  push(chunk: Uint8Array): ReaderEvent[] {
    const events: ReaderEvent[] = [];
    let at = 0;
    while (at < chunk.length || (this.stage === 'data' && this.need === 0)) {
      if (this.stage === 'done') {
        throw new FastPatchError('CORRUPT_PAYLOAD', `unexpected bytes after the end of the payload at offset ${this.offset}`);
      }
      const n = Math.min(this.need, chunk.length - at);
      this.buf.set(chunk.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      this.offset += n;
      if (this.need === 0) this.completeUnit(events);
    }
    return events;
  }

  /** Declares the end of the stream. Throws FastPatchError('TRUNCATED_PAYLOAD') if anything is missing. */
  end(): void {
    if (this.stage !== 'done') {
      throw new FastPatchError('TRUNCATED_PAYLOAD', `payload truncated at byte ${this.offset}: ${this.need} more bytes of the ${this.stage === 'data' ? `data of operation ${this.opIndex}` : this.stage} expected`);
    }
  }

  /**
   * Hands back the buffer of a data blob this reader emitted, once the caller is done with it (and
   * with anything sharing its memory), so later blobs are read into it instead of fresh memory.
   */
  recycle(blob: Uint8Array): void {
    if (blob.byteLength > 0 && this.blobPool.length < BLOB_POOL_SIZE) this.blobPool.push(blob.buffer as ArrayBuffer);
  }

  private expect(size: number): void {
    this.buf = new Uint8Array(size);
    this.filled = 0;
  }

  /** Like expect(), for a data blob: a view of exactly `size` bytes on a recycled or fresh buffer. */
  private expectBlob(size: number): void {
    if (size === 0) return this.expect(0);
    this.blobCapacity = Math.max(this.blobCapacity, size);
    let buffer = this.blobPool.pop();
    while (buffer && buffer.byteLength < size) buffer = this.blobPool.pop(); // too small: dropped
    this.buf = new Uint8Array(buffer ?? new ArrayBuffer(this.blobCapacity), 0, size);
    this.filled = 0;
  }

  private completeUnit(events: ReaderEvent[]): void {
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
        validateManifest(this.manifest, this.header!.dataSize);
        events.push({
          kind: 'head',
          head: {
            header: this.header!,
            headerBytes: this.headerBytes!,
            manifest: this.manifest!,
            manifestBytes: this.manifestBytes!,
            signatures,
            dataStart: this.offset,
          },
        });
        this.stage = 'data';
        this.nextBlob();
        return;
      }
      case 'data':
        events.push({ kind: 'data', index: this.opIndex, blob: this.buf });
        this.opIndex++;
        this.nextBlob();
        return;
      case 'done':
        return;
    }
  }

  /** Moves to the next operation that carries data; operations without data produce an empty blob event. */
  private nextBlob(): void {
    const ops = this.manifest!.operations;
    if (this.opIndex >= ops.length) {
      this.stage = 'done';
      this.buf = new Uint8Array(0);
      this.filled = 0;
      return;
    }
    this.expectBlob(ops[this.opIndex]!.dataLength);
  }
}
