/**
 * Constants of the payload format, versions 1 and 2 (docs/FORMAT.md). Shared by the generator and the applier, which
 * import nothing else from each other.
 */

import { BLOCK_SIZE, DIGEST_SIZE } from '../block.js';

/** First 8 bytes of every payload: "FPAY" then CR LF SUB LF, so text-mode transfers show up as corruption. */
export const MAGIC = Uint8Array.of(0x46, 0x50, 0x41, 0x59, 0x0d, 0x0a, 0x1a, 0x0a);
/**
 * The newest format version this build writes and reads. Version 2 added the zstd operations
 * (5, 6); a payload carries the lowest version that has every operation type it uses, so a
 * payload without zstd data is still version 1 and older appliers take it, and an older applier
 * refuses a version-2 payload by its header, before it writes anything.
 */
export const FORMAT_VERSION = 2;
/** The oldest version this build reads: payloads made by earlier releases of the tool still apply. */
export const MIN_FORMAT_VERSION = 1;
export const HEADER_SIZE = 32;
/** The only block size of versions 1 and 2, and the digest size (src/block.ts). */
export { BLOCK_SIZE, DIGEST_SIZE };

/** Operation types. Numbers are stable; 3 and 4 read the source image and appear in delta payloads only. */
export const OpType = {
  /** Data blob written as is. */
  REPLACE: 0,
  /** Data blob is a raw deflate stream (RFC 1951) of the output. */
  REPLACE_DEFLATE: 1,
  /** Output is all zero bytes; no data blob. */
  ZERO: 2,
  /** Source extents copied to the destination; no data blob. */
  SOURCE_COPY: 3,
  /** Source extents patched by a diff blob (docs/FORMAT.md, "SOURCE_DIFF"). */
  SOURCE_DIFF: 4,
  /** Data blob is one zstd frame (RFC 8878) of the output. Format version 2. */
  REPLACE_ZSTD: 5,
  /** Data blob is one zstd frame of the output, compressed with the source data as a raw-content dictionary. Format version 2. */
  SOURCE_ZSTD: 6,
} as const;

export const OP_NAMES: Record<number, string> = {
  0: 'REPLACE',
  1: 'REPLACE_DEFLATE',
  2: 'ZERO',
  3: 'SOURCE_COPY',
  4: 'SOURCE_DIFF',
  5: 'REPLACE_ZSTD',
  6: 'SOURCE_ZSTD',
};

/** Operation types of format version 1. */
const V1_OPS = [OpType.REPLACE, OpType.REPLACE_DEFLATE, OpType.ZERO, OpType.SOURCE_COPY, OpType.SOURCE_DIFF];
/** Operation types each format version may carry; the others are refused as unsupported. */
export const OPS_OF_VERSION: ReadonlyMap<number, ReadonlySet<number>> = new Map([
  [1, new Set(V1_OPS)],
  [2, new Set([...V1_OPS, OpType.REPLACE_ZSTD, OpType.SOURCE_ZSTD])],
]);
/** Operation types this build applies (those of FORMAT_VERSION). */
export const SUPPORTED_OPS: ReadonlySet<number> = OPS_OF_VERSION.get(FORMAT_VERSION)!;
/** The lowest format version that carries every one of `types`. */
export function formatVersionFor(types: Iterable<number>): number {
  let version = MIN_FORMAT_VERSION;
  for (const type of types) if (!OPS_OF_VERSION.get(version)!.has(type)) version = FORMAT_VERSION;
  return version;
}
/** Operation types that read the source image. */
export const SOURCE_OPS: ReadonlySet<number> = new Set([OpType.SOURCE_COPY, OpType.SOURCE_DIFF, OpType.SOURCE_ZSTD]);
/**
 * zstd's magic number of a formatted dictionary (RFC 8878, "Dictionary Format"), little-endian on
 * the wire. zstd reads any other dictionary as raw content; source data that begins with these
 * bytes would be parsed as a formatted one, so SOURCE_ZSTD refuses it (docs/FORMAT.md).
 */
export const ZSTD_DICTIONARY_MAGIC = Uint8Array.of(0x37, 0xa4, 0x30, 0xec);

/**
 * Hard limits. Every length and count read from a payload is checked against these before
 * anything is allocated; README.md, "Memory", derives the applier's bound from them.
 */
export const LIMITS = {
  MAX_MANIFEST_SIZE: 16 * 1024 * 1024,
  MAX_SIGNATURES: 16,
  /** One operation's data blob. */
  MAX_BLOB_SIZE: 16 * 1024 * 1024,
  /** Bytes one data-carrying operation writes (ZERO operations are not held in memory and have no cap). */
  MAX_OP_OUTPUT: 16 * 1024 * 1024,
  /** Bytes of source one operation reads (SOURCE_COPY, SOURCE_DIFF): it is held in memory and hashed. */
  MAX_OP_SOURCE: 16 * 1024 * 1024,
  /**
   * Target blocks a SOURCE_ZSTD may take as dictionary from right before its output (16 MiB): the
   * applier keeps that much of the image it has just written and verified (format 2).
   */
  MAX_TARGET_DICTIONARY_BLOCKS: 4096,
  /** Operations per manifest: 2^18 operations of 2 MiB cover 512 GiB. */
  MAX_OPS: 1 << 18,
  /** Extents of all operations together. */
  MAX_EXTENTS: 1 << 20,
  MAX_VERSION_LENGTH: 64,
  /** Image sizes stay exact in JS numbers. */
  MAX_IMAGE_SIZE: Number.MAX_SAFE_INTEGER - BLOCK_SIZE,
} as const;

/** Signature block: u16 count, u16 reserved, then count × (8-byte key id, 64-byte ed25519 signature). */
export const KEY_ID_SIZE = 8;
export const SIGNATURE_SIZE = 64;
export const SIGNATURE_ENTRY_SIZE = KEY_ID_SIZE + SIGNATURE_SIZE;

/** Prefix of the signed message: domain separation from any other use of the same key. */
export const SIGNING_CONTEXT = 'FastPatch payload v1 signature\0';
