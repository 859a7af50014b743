/**
 * The last bytes of the image an apply has verified, for SOURCE_ZSTD operations whose dictionary
 * includes the target blocks right before their output (format 2, docs/FORMAT.md, "zstd data").
 *
 * New files in a release resemble each other more than anything in the old image (the client
 * programs of one package share their library code), and zstd --patch-from finds that because
 * its window spans the whole new image. An operation can have the same: up to 16 MiB of the image
 * just before it as dictionary. The applier keeps those bytes here, as verified outputs go by in
 * operation order, instead of reading them back from the target: nothing another process writes
 * to the device between the write and the read can reach a dictionary, and `verify`, which has
 * no target, checks such operations too.
 */
import { BLOCK_SIZE } from '../format/constants.js';

export class OutputWindow {
  private readonly ring: Uint8Array;
  /** Image bytes appended so far, i.e. the image offset the next byte belongs at. */
  private end = 0;

  constructor(readonly capacity: number) {
    if (capacity % BLOCK_SIZE !== 0 || capacity <= 0) throw new RangeError(`capacity: a positive multiple of ${BLOCK_SIZE}, got ${capacity}`);
    this.ring = new Uint8Array(capacity);
  }

  /** Appends the next `length` bytes of the image: `bytes`, or zeros when absent (a ZERO operation). */
  append(length: number, bytes?: Uint8Array): void {
    if (bytes && bytes.length !== length) throw new Error('unreachable: output length disagrees with its extents');
    // Only the last `capacity` bytes can ever be asked for.
    const skip = Math.max(0, length - this.capacity);
    this.end += skip;
    for (let done = skip; done < length; ) {
      const at = this.end % this.capacity;
      const n = Math.min(length - done, this.capacity - at);
      if (bytes) this.ring.set(bytes.subarray(done, done + n), at);
      else this.ring.fill(0, at, at + n);
      this.end += n;
      done += n;
    }
  }

  /** A copy of image bytes [start, end), which must be among the last `capacity` appended. */
  copy(start: number, end: number, into = new Uint8Array(end - start)): Uint8Array {
    if (start < 0 || end > this.end || end - start > this.capacity || start > end || start < this.end - this.capacity) {
      throw new Error(`unreachable: image bytes ${start}..${end} are not in the window (it holds ..${this.end})`);
    }
    for (let done = 0; done < end - start; ) {
      const at = (start + done) % this.capacity;
      const n = Math.min(end - start - done, this.capacity - at);
      into.set(this.ring.subarray(at, at + n), done);
      done += n;
    }
    return into;
  }

  /** Image bytes appended so far. */
  get length(): number {
    return this.end;
  }
}
