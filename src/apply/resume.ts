/**
 * Resuming an interrupted apply: which operations the target already holds.
 *
 * What resume trusts is the target itself, checked against the signed manifest: an operation is
 * done when the bytes its destination extents cover hash to its signed output hash. No checkpoint
 * file is read, so there is nothing local that could be stale or forged; a partly written
 * operation, or one whose bytes changed since, hashes differently and is applied again.
 *
 * The operations' destination extents cover the target block after block in operation order
 * (validateManifest), so one sequential read of the target, cut into block digests and split at
 * the operations' boundaries, checks every operation: the cost is one read of the image, hashed
 * at the core's speed, with two read windows of memory whatever the image size.
 */
import { BLOCK_SIZE, DIGEST_SIZE } from '../format/constants.js';
import { extentBytes, type Manifest } from '../format/manifest.js';
import { readWindows, type OpenImage } from '../io/device.js';
import type { WasmCore } from '../wasm/core.js';

export interface ResumeScan {
  /** done[i] = 1 when operation i's output is already on the target. */
  done: Uint8Array;
  /** Operations done, and the image bytes they cover. */
  opsDone: number;
  bytesDone: number;
}

/** Checks every operation's destination against its signed output hash. Throws FastPatchError('IO'). */
export async function scanTarget(core: WasmCore, target: OpenImage, manifest: Manifest, onProgress?: (bytes: number) => void): Promise<ResumeScan> {
  const ops = manifest.operations;
  const done = new Uint8Array(ops.length);
  // Blocks left in operation `op`, and its running hash over block digests.
  let op = 0;
  let left = ops.length > 0 ? blocksOf(ops[0]!) : 0;
  let hash = core.sha256();
  let opsDone = 0;
  let bytesDone = 0;
  const window = Math.floor(core.windowSize / BLOCK_SIZE) * BLOCK_SIZE;
  const digests = new Uint8Array((window / BLOCK_SIZE) * DIGEST_SIZE);
  for await (const { pos, data } of readWindows(target, window, manifest.targetSize)) {
    const count = core.blockDigestsInto(data, digests);
    let at = 0;
    while (at < count && op < ops.length) {
      const take = Math.min(left, count - at);
      hash.update(digests.subarray(at * DIGEST_SIZE, (at + take) * DIGEST_SIZE));
      at += take;
      left -= take;
      if (left === 0) {
        if (Buffer.compare(hash.digest(), ops[op]!.outputHash) === 0) {
          done[op] = 1;
          opsDone++;
          bytesDone += extentBytes(ops[op]!.dstExtents, manifest.targetSize);
        }
        op++;
        hash = core.sha256();
        left = op < ops.length ? blocksOf(ops[op]!) : 0;
      }
    }
    onProgress?.(pos + data.length);
  }
  return { done, opsDone, bytesDone };
}

function blocksOf(op: Manifest['operations'][number]): number {
  let n = 0;
  for (const e of op.dstExtents) n += e.blockCount;
  return n;
}
