import { BLOCK_SIZE, DIGEST_SIZE } from '../format/constants.js';
import { hex } from '../hex.js';
import { FastPatchError } from '../errors.js';
import { BlockListHasher } from '../wasm/block-list.js';
import { WasmCore, type CoreBuild } from '../wasm/core.js';
import { openImageForRead, readFully, type OpenImage } from '../io/device.js';

/**
 * Block-list hash of the first `size` bytes of an open image. Reads go to a buffer of our own, not
 * the WASM window: the core is shared by everything on this thread, and another hash may run
 * while a read is pending.
 */
export async function hashOpenImage(core: WasmCore, image: OpenImage, size: number): Promise<Uint8Array> {
  const hasher = new BlockListHasher(core);
  const buffer = new Uint8Array(core.windowSize);
  const digests = new Uint8Array((core.windowSize / BLOCK_SIZE) * DIGEST_SIZE);
  for (let pos = 0; pos < size; pos += core.windowSize) {
    const n = Math.min(core.windowSize, size - pos);
    await readFully(image, buffer, n, pos);
    const count = core.blockDigestsInto(buffer.subarray(0, n), digests);
    hasher.updateDigests(digests.subarray(0, count * DIGEST_SIZE));
  }
  return hasher.digest();
}

/**
 * The block-list hash (docs/FORMAT.md) of an image file or block device, as a payload's manifest
 * records it; `length` limits it to the first bytes (a partition larger than its image).
 */
export async function hashImage(path: string, length?: number, build?: CoreBuild): Promise<{ size: number; hash: string }> {
  const core = WasmCore.load(build);
  const image = await openImageForRead(path);
  try {
    // More than the image holds is a mistake (a wrong image, or a typo in the size), not a request
    // to hash less than asked: a manifest's image hash covers exactly its size.
    if (length !== undefined && length > image.size) {
      throw new FastPatchError('USAGE', `${path} holds ${image.size} bytes, fewer than the ${length} asked for with --size; give at most its size, or leave --size out to hash all of it`);
    }
    const size = length ?? image.size;
    return { size, hash: hex(await hashOpenImage(core, image, size)) };
  } finally {
    await image.handle.close();
  }
}
