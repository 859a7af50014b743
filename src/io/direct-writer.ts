/**
 * Writes an apply's output to a block device past the page cache (O_DIRECT).
 *
 * A buffered write to a block device copies every byte into the device's page cache, and the
 * kernel then allocates, reclaims and writes back those pages. On the machine the benchmarks run
 * on (bench/RESULTS.md, "Fifth session of issue 12"), writing a 512 MiB image to a loop device
 * took 0.30-1.7 s and 0.17-1.5 CPU-seconds buffered, 0.20-0.27 s and 0.06 CPU-seconds with
 * O_DIRECT: the slow runs were all system time in the page cache, on the cores the decode workers
 * need. Nothing of the target is read back through the cache that these writes would leave stale:
 * the kernel drops cached pages a direct write covers.
 *
 * O_DIRECT needs the buffer, the position and the length aligned to the device's logical block. A
 * Node buffer is not aligned; a WebAssembly memory starts on a page boundary. So each write is
 * copied into one of a few fixed slots of one such memory (a user-space copy, ~10x cheaper than
 * the kernel's) and written from there. A write whose position or length is not a whole number of
 * 4 KiB blocks (the image's last, short block), and every write on a device that refuses O_DIRECT,
 * goes through the image's own buffered handle instead.
 */
import { close, constants, open, write } from 'node:fs';
import { promisify } from 'node:util';
import { ioError } from '../errors.js';
import { writeFully, type OpenImage } from './device.js';

/** O_DIRECT alignment assumed for positions and lengths: every logical block size up to a page. */
const ALIGN = 4096;
/** Bytes per staging slot, and slots: writes of up to SLOTS × SLOT_BYTES run at once. */
export const SLOT_BYTES = 4 * 1024 * 1024;
export const SLOTS = 4;
const WASM_PAGE = 65536;

const openAsync = promisify(open);
const writeAsync = promisify(write);
const closeAsync = promisify(close);

/** WebAssembly's constructors, which @types/node does not declare. */
declare const WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };

export class DirectWriter {
  private readonly free: Uint8Array[] = [];
  private readonly waiting: ((slot: Uint8Array) => void)[] = [];
  /** False once the device refused an aligned direct write: the rest goes through the page cache. */
  private direct = true;
  /** Bytes written past the page cache, and through it (short tails, refused direct writes). */
  readonly written = { direct: 0, buffered: 0 };
  private closing: Promise<void> | undefined;

  private constructor(private readonly image: OpenImage, private readonly fd: number) {
    const memory = new WebAssembly.Memory({ initial: (SLOTS * SLOT_BYTES) / WASM_PAGE, maximum: (SLOTS * SLOT_BYTES) / WASM_PAGE });
    for (let i = 0; i < SLOTS; i++) this.free.push(new Uint8Array(memory.buffer, i * SLOT_BYTES, SLOT_BYTES));
  }

  /**
   * A writer for `image` when it is a block device that can be opened for direct writes, else
   * undefined (write through the image's handle). The device is reopened through the handle's own
   * /proc/self/fd link, so the second descriptor reaches the very device the first holds, whatever
   * its path names now; without O_EXCL, which the first one may hold already.
   */
  static async open(image: OpenImage): Promise<DirectWriter | undefined> {
    if (!image.isBlockDevice || (image.offset ?? 0) % ALIGN !== 0 || process.platform !== 'linux') return undefined;
    try {
      const fd = await openAsync(`/proc/self/fd/${image.handle.fd}`, constants.O_WRONLY | constants.O_DIRECT);
      return new DirectWriter(image, fd);
    } catch {
      return undefined;
    }
  }

  /** Writes all of `data` at `position` of the image. Throws FastPatchError('IO'). */
  async write(data: Uint8Array, position: number): Promise<void> {
    if (!this.direct || position % ALIGN !== 0 || data.length % ALIGN !== 0) return this.buffered(data, position);
    const pieces: Promise<void>[] = [];
    for (let from = 0; from < data.length; from += SLOT_BYTES) {
      const piece = data.subarray(from, Math.min(data.length, from + SLOT_BYTES));
      const slot = await this.slot();
      slot.set(piece);
      pieces.push(this.writeSlot(slot, piece, position + from));
    }
    // Every piece settles before this write does: none is still in flight when it fails.
    const failed = (await Promise.allSettled(pieces)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Waits for the writes in flight (their slots all back), then closes the descriptor. Once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (let i = 0; i < SLOTS; i++) await this.slot();
      await closeAsync(this.fd);
    })();
    return this.closing;
  }

  private async writeSlot(slot: Uint8Array, piece: Uint8Array, position: number): Promise<void> {
    const at = (this.image.offset ?? 0) + position;
    let done = 0;
    try {
      while (done < piece.length && this.direct) {
        try {
          const n = (await writeAsync(this.fd, slot, done, piece.length - done, at + done)).bytesWritten;
          if (n === 0) this.direct = false; // no progress: never loop on it
          done += n;
          this.written.direct += n;
        } catch (err) {
          // EINVAL: the device's logical block is larger than ALIGN, or it takes no direct I/O.
          if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw ioError(`write ${this.image.path} at ${position + done}`, err);
          this.direct = false;
        }
      }
      if (done < piece.length) await this.buffered(piece.subarray(done), position + done);
    } finally {
      this.release(slot);
    }
  }

  private async buffered(data: Uint8Array, position: number): Promise<void> {
    await writeFully(this.image, data, position);
    this.written.buffered += data.length;
  }

  private slot(): Promise<Uint8Array> | Uint8Array {
    return this.free.pop() ?? new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(slot: Uint8Array): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}
