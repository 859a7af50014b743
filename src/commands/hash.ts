import { hashImage } from '../apply/hash-image.js';
import { print, printJson } from './output.js';

/**
 * `fastpatch hash`: the block-list hash a manifest records (SHA-256 over the per-block hashes),
 * which is not the file's SHA-256. The text output is labelled so that it cannot be mistaken for
 * `sha256sum`'s, nor checked with `sha256sum -c`.
 */
export async function run(image: string, opts: { size?: number; json?: boolean }): Promise<void> {
  const result = await hashImage(image, opts.size);
  if (opts.json) printJson({ image, ...result });
  else print(`blocklist-sha256:${result.hash}  ${image} (${result.size} bytes; the hash a manifest records, not the file's SHA-256)`);
}
