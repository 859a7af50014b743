/**
 * What an apply is asked (ApplyOptions) and what it reports (ApplyProgress, ApplyResult): the
 * types of the library's applyPayload and PayloadApplier (applier.ts).
 */
import type { PrivateKey, PublicKey } from '../sign/keys.js';
import type { CoreBuild } from '../wasm/core.js';

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
