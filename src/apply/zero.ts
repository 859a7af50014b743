import { BLOCK_SIZE, DIGEST_SIZE } from '../format/constants.js';
import type { WasmCore } from '../wasm/core.js';

/** Reused 1 MiB of zeros for writing ZERO operations. */
export const ZERO_CHUNK = new Uint8Array(1024 * 1024);

/**
 * Feeds the per-block digests of `bytes` zero bytes to `sink` in batches, without materializing
 * the zeros: every full block has the same digest.
 */
export function feedZeroDigests(core: WasmCore, bytes: number, sink: (digests: Uint8Array) => void): void {
  const fullDigest = new Uint8Array(DIGEST_SIZE);
  core.blockDigestsInto(ZERO_CHUNK.subarray(0, BLOCK_SIZE), fullDigest);
  const batchBlocks = 1024;
  const batch = new Uint8Array(batchBlocks * DIGEST_SIZE);
  for (let i = 0; i < batchBlocks; i++) batch.set(fullDigest, i * DIGEST_SIZE);
  let fullBlocks = Math.floor(bytes / BLOCK_SIZE);
  while (fullBlocks > 0) {
    const n = Math.min(fullBlocks, batchBlocks);
    sink(batch.subarray(0, n * DIGEST_SIZE));
    fullBlocks -= n;
  }
  const tail = bytes % BLOCK_SIZE;
  if (tail > 0) {
    const tailDigest = new Uint8Array(DIGEST_SIZE);
    core.blockDigestsInto(ZERO_CHUNK.subarray(0, tail), tailDigest);
    sink(tailDigest);
  }
}
