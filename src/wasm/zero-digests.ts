import { BLOCK_SIZE, DIGEST_SIZE } from './layout.js';
import { BlockListHasher } from './block-list.js';
import type { WasmCore } from './core.js';

const BATCH_BLOCKS = 1024;

/**
 * Feeds the per-block SHA-256 digests of `bytes` zero bytes to `sink`, in batches of at most 1024,
 * without materializing the zeros: every full block has the same digest. `sink` must not keep the
 * arrays it is given.
 */
export function feedZeroDigests(core: WasmCore, bytes: number, sink: (digests: Uint8Array) => void): void {
  const batch = zeroBatch(core);
  for (let full = Math.floor(bytes / BLOCK_SIZE); full > 0; full -= BATCH_BLOCKS) {
    sink(batch.subarray(0, Math.min(full, BATCH_BLOCKS) * DIGEST_SIZE));
  }
  const tail = bytes % BLOCK_SIZE;
  if (tail > 0) {
    const tailDigest = new Uint8Array(DIGEST_SIZE);
    core.blockDigestsInto(new Uint8Array(tail), tailDigest);
    sink(tailDigest);
  }
}

/**
 * BATCH_BLOCKS copies of the zero block's digest, made once per core: an image's ZERO operations
 * are many (one per zero run), and 32 KiB of fresh digests each was garbage enough to raise an
 * apply's peak memory with the image size.
 */
const batches = new WeakMap<WasmCore, Uint8Array>();
function zeroBatch(core: WasmCore): Uint8Array {
  let batch = batches.get(core);
  if (!batch) {
    batch = new Uint8Array(BATCH_BLOCKS * DIGEST_SIZE);
    core.blockDigestsInto(new Uint8Array(BLOCK_SIZE), batch);
    for (let i = 1; i < BATCH_BLOCKS; i++) batch.copyWithin(i * DIGEST_SIZE, 0, DIGEST_SIZE);
    batches.set(core, batch);
  }
  return batch;
}

/** Block-list hash of `bytes` zero bytes (a ZERO operation's output hash), without materializing them. */
export function zeroBlockListHash(core: WasmCore, bytes: number): Uint8Array {
  const hasher = new BlockListHasher(core);
  feedZeroDigests(core, bytes, (digests) => hasher.updateDigests(digests));
  return hasher.digest();
}
