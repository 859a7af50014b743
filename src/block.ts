/**
 * The block, on both sides of the WASM boundary: the unit of hashing, zero runs and extents in
 * the payload format (format/) and in the hashing core's ABI (wasm/, which checks the module
 * reports the same at load). assembly/layout.ts, which imports nothing from src/, says it again.
 * A leaf: imports nothing.
 */

/** Bytes per block: 4 KiB, as dm-verity and every filesystem of an OS image use. */
export const BLOCK_SIZE = 4096;
/** Bytes of one SHA-256 digest. */
export const DIGEST_SIZE = 32;
