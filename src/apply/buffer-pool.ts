/**
 * A few large buffers kept for reuse. Every operation of a payload needs megabytes (its data blob,
 * the source blocks it reads); allocated fresh each time they become garbage the collector reclaims
 * late, so the process's peak memory would grow with the number of operations, that is with the
 * image size. Handing buffers back once their bytes are written keeps the applier's memory flat.
 */
export class BufferPool {
  private readonly buffers: ArrayBuffer[] = [];
  private bytes = 0;

  /**
   * @param limit buffers kept at most; the oldest is dropped for a newer one.
   * @param limitBytes bytes kept at most, likewise.
   */
  constructor(private readonly limit: number, private readonly limitBytes = Infinity) {}

  /** A view of exactly `size` bytes on a kept buffer that holds it, else on a new one (old bytes: any). */
  take(size: number): Uint8Array {
    const fit = this.buffers.findIndex((b) => b.byteLength >= size);
    if (fit < 0) return new Uint8Array(size);
    const buffer = this.buffers.splice(fit, 1)[0]!;
    this.bytes -= buffer.byteLength;
    return new Uint8Array(buffer, 0, size);
  }

  /** Keeps `buffer` for a later take(). The caller must no longer use it (nor any view of it). */
  give(buffer: ArrayBufferLike): void {
    if (buffer.byteLength === 0 || !(buffer instanceof ArrayBuffer)) return;
    if (this.buffers.includes(buffer)) return;
    if (buffer.byteLength > this.limitBytes) return;
    // Keep the most recent sizes.
    while (this.buffers.length >= this.limit || this.bytes + buffer.byteLength > this.limitBytes) this.bytes -= this.buffers.shift()!.byteLength;
    this.buffers.push(buffer);
    this.bytes += buffer.byteLength;
  }
}
