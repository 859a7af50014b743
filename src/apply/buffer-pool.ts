/**
 * Large buffers kept for reuse. Every operation of a payload needs megabytes (its data blob, the
 * source blocks it reads, its output) and a digest list. Allocated fresh each time, they become
 * garbage the collector reclaims late, and freed memory of many sizes fragments the C allocator's
 * arenas, which keep it resident: the process's peak memory then grows with the number of
 * operations, that is with the image size. Handed back once their bytes are written, and sized in
 * whole SIZE_CLASS steps so that one buffer serves many operations of similar size, they are
 * allocated once and reused until the apply ends.
 */
export class BufferPool {
  private readonly buffers: (ArrayBuffer | SharedArrayBuffer)[] = [];
  private bytes = 0;

  /**
   * @param limit buffers kept at most; the oldest is dropped for a newer one.
   * @param limitBytes bytes kept at most, likewise.
   * @param shared allocate SharedArrayBuffers, and tell this meter the bytes of every buffer the
   *   pool drops. Buffers that go to worker threads and back are then shared, not transferred. A
   *   transferred buffer arrives as a new ArrayBuffer, whose bytes the receiving thread counts as
   *   new external memory until a collection finds the old one dead: an apply's main thread ran a
   *   full collection per ~64 MiB of operations for that alone (10 in a 512 MiB full apply). V8
   *   counts no shared memory towards collecting, so the memory of a dropped buffer is only
   *   returned by a collection someone asks for (GarbageMeter.released).
   */
  constructor(private readonly limit: number, private readonly limitBytes = Infinity, private readonly shared?: { released(bytes: number): void }) {}

  /**
   * A view of exactly `size` bytes (old contents: any) on the smallest kept buffer that holds it
   * without wasting more than half of itself, else on a new buffer of `size` rounded up to whole
   * size classes.
   */
  take(size: number): Uint8Array {
    if (size === 0) return new Uint8Array(0);
    const rounded = roundUp(size);
    let fit = -1;
    for (let i = 0; i < this.buffers.length; i++) {
      const length = this.buffers[i]!.byteLength;
      if (length >= size && length <= 2 * rounded && (fit < 0 || length < this.buffers[fit]!.byteLength)) fit = i;
    }
    if (fit < 0) return new Uint8Array(this.shared ? new SharedArrayBuffer(rounded) : new ArrayBuffer(rounded), 0, size);
    const buffer = this.buffers.splice(fit, 1)[0]!;
    this.bytes -= buffer.byteLength;
    return new Uint8Array(buffer, 0, size);
  }

  /**
   * Keeps `buffer` for a later take(). The caller must no longer use it (nor any view of it). A
   * SharedArrayBuffer that came back from another thread is a new object for the same memory: the
   * caller gives each buffer once (the check below only catches the same object given twice).
   */
  give(buffer: ArrayBufferLike): void {
    if (buffer.byteLength === 0 || !(buffer instanceof ArrayBuffer || buffer instanceof SharedArrayBuffer)) return;
    if (this.buffers.includes(buffer)) return;
    if (buffer.byteLength > this.limitBytes) {
      this.shared?.released(buffer.byteLength);
      return;
    }
    // Keep the most recent sizes.
    while (this.buffers.length >= this.limit || this.bytes + buffer.byteLength > this.limitBytes) {
      const dropped = this.buffers.shift()!.byteLength;
      this.bytes -= dropped;
      this.shared?.released(dropped);
    }
    this.buffers.push(buffer);
    this.bytes += buffer.byteLength;
  }
}

/**
 * Buffers are allocated in steps of this many bytes: a 1 MiB operation's blob compressed to 300 or
 * 310 KiB, or a patched output of 1 MiB and one of 1 MiB less a block, share a buffer size.
 * Smaller buffers (digest lists, one-block diffs) take the next power of two, 4 KiB at least.
 */
export const SIZE_CLASS = 64 * 1024;

function roundUp(size: number): number {
  if (size >= SIZE_CLASS) return Math.ceil(size / SIZE_CLASS) * SIZE_CLASS;
  return Math.max(4096, 2 ** Math.ceil(Math.log2(Math.max(size, 1))));
}
