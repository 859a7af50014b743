import { constants, promises as fsp, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { FastPatchError, ioError } from '../errors.js';
import { rangeUsers } from './mounts.js';

/** An open image: a regular file or a block device, with its size in bytes. */
export interface OpenImage {
  handle: fsp.FileHandle;
  path: string;
  size: number;
  isBlockDevice: boolean;
  /** True when openTarget created the file: it reads as zeros everywhere. */
  created: boolean;
  /** Equal for two opens of the same file or device, whatever path led there. */
  identity: string;
  /**
   * Where the image starts inside the file or device (a partition's byte range inside a whole
   * disk); reads and writes add it. 0 when absent. `size` is then the range's length.
   */
  offset?: number;
}

/** True if two open images share bytes: the same file or device, with overlapping ranges. */
export function overlaps(a: OpenImage, b: OpenImage): boolean {
  const aStart = a.offset ?? 0, bStart = b.offset ?? 0;
  return a.identity === b.identity && aStart < bStart + Math.max(b.size, 1) && bStart < aStart + Math.max(a.size, 1);
}

/**
 * The same open image restricted to `length` bytes from `offset` (relative to its current start).
 * Throws FastPatchError('USAGE') if the range does not lie inside it.
 */
export function imageRange(image: OpenImage, offset: number, length: number): OpenImage {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > image.size) {
    throw new FastPatchError('USAGE', `${image.path}: bytes ${offset}+${length} lie outside its ${image.size} bytes`);
  }
  const base = image.offset ?? 0;
  return { ...image, offset: base + offset, size: length, created: false };
}

function identityOf(stats: Stats): string {
  return stats.isBlockDevice() ? `block ${majorMinor(stats.rdev)}` : `file ${stats.dev}:${stats.ino}`;
}

// Linux dev_t layout (glibc's gnu_dev_major/minor).
export function majorMinor(rdev: number): string {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/**
 * Size in bytes of what `stats` describes. stat() reports 0 for block devices, so their size is
 * read from sysfs (/sys/dev/block/MAJ:MIN/size counts 512-byte units whatever the sector size).
 */
export async function imageSize(stats: Stats, path: string): Promise<number> {
  if (stats.isFile()) return stats.size;
  if (!stats.isBlockDevice()) throw new FastPatchError('IO', `${path} is neither a regular file nor a block device`);
  const sysfs = `/sys/dev/block/${majorMinor(stats.rdev)}/size`;
  try {
    const sectors = Number((await readFile(sysfs, 'utf8')).trim());
    if (!Number.isSafeInteger(sectors)) throw new Error(`unreadable size in ${sysfs}`);
    return sectors * 512;
  } catch (err) {
    throw ioError(`size of block device ${path}`, err);
  }
}

/** Opens an image read-only. Throws FastPatchError('IO'). */
export async function openImageForRead(path: string): Promise<OpenImage> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, constants.O_RDONLY);
  } catch (err) {
    throw ioError(`open ${path}`, err);
  }
  try {
    const stats = await handle.stat();
    return { handle, path, size: await imageSize(stats, path), isBlockDevice: stats.isBlockDevice(), created: false, identity: identityOf(stats) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * Opens a target for writing without truncating it: an existing file or block device keeps its
 * bytes until an operation overwrites them. A missing path is created as an empty regular file of
 * `createSize` bytes. Throws FastPatchError('IO').
 */
export async function openTarget(path: string, createSize: number, range?: { offset: number; length: number }): Promise<OpenImage> {
  let handle: fsp.FileHandle;
  let created = false;
  try {
    handle = await fsp.open(path, constants.O_RDWR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`open target ${path}`, err);
    try {
      handle = await fsp.open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
      created = true;
    } catch (err2) {
      throw ioError(`create target ${path}`, err2);
    }
  }
  try {
    if (created) await handle.truncate(createSize);
    let stats = await handle.stat();
    if (stats.isBlockDevice() && range) {
      // A slot inside a whole disk: another partition (the running system) may be mounted, so
      // O_EXCL cannot be used; nothing may use the partitions the range overlaps.
      const users = await rangeUsers(majorMinor(stats.rdev), range.offset, range.length);
      if (users.length > 0) throw new FastPatchError('IO', `target ${path} bytes ${range.offset}+${range.length} are in use: ${users.join('; ')}; refusing to write there`);
    } else if (stats.isBlockDevice()) {
      // O_EXCL on a block device fails with EBUSY while it is mounted or otherwise claimed: never
      // write under a mounted filesystem.
      const exclusive = await fsp.open(path, constants.O_RDWR | constants.O_EXCL).catch((err: NodeJS.ErrnoException) => {
        throw err.code === 'EBUSY' ? new FastPatchError('IO', `target ${path} is in use (mounted?); refusing to write to it`) : ioError(`open target ${path}`, err);
      });
      await handle.close();
      handle = exclusive;
      stats = await handle.stat();
    }
    return { handle, path, size: await imageSize(stats, path), isBlockDevice: stats.isBlockDevice(), created, identity: identityOf(stats) };
  } catch (err) {
    await handle.close();
    throw err instanceof FastPatchError ? err : ioError(`target ${path}`, err);
  }
}

/** Reads exactly `length` bytes at `position` into `buffer` (short reads retried). Throws FastPatchError('IO'). */
export async function readFully(image: Pick<OpenImage, 'handle' | 'path' | 'offset'>, buffer: Uint8Array, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await image.handle.read(buffer, done, length - done, (image.offset ?? 0) + position + done));
    } catch (err) {
      throw ioError(`read ${image.path} at ${position + done}`, err);
    }
    if (n === 0) throw new FastPatchError('IO', `${image.path} ended at ${position + done}, expected ${position + length} bytes`);
    done += n;
  }
}

/** Writes all of `data` to an open image at `position` (short writes retried). Throws FastPatchError('IO'). */
export function writeFully(image: OpenImage, data: Uint8Array, position: number): Promise<void> {
  return writeAllAt(image.handle, data, (image.offset ?? 0) + position, image.path);
}

/** Writes all of `data` at `position` (short writes retried); `what` names the file in errors. */
export async function writeAllAt(handle: fsp.FileHandle, data: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < data.length) {
    try {
      const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    } catch (err) {
      throw ioError(`write ${what} at ${position + done}`, err);
    }
  }
}

/**
 * Reads whole blocks of `image` (extents in BLOCK_SIZE units) one after another into a new buffer
 * (or one from `buffer`, which must return exactly the length asked for; its old bytes do not matter).
 * Bytes past the image's end read as zero, so a short last block is a full block padded with zeros
 * (what a delta operation's source data is, docs/FORMAT.md). Throws FastPatchError('IO').
 */
export async function readExtents(
  image: OpenImage, extents: readonly { startBlock: number; blockCount: number }[], blockSize: number, buffer?: (length: number) => Uint8Array,
): Promise<Uint8Array> {
  let total = 0;
  for (const e of extents) total += e.blockCount * blockSize;
  const out = buffer ? buffer(total) : new Uint8Array(total);
  if (out.length !== total) throw new RangeError(`buffer(${total}) returned ${out.length} bytes`);
  // Extents of a delta's operation are often many and small (a file's blocks scattered by a
  // rebuilt filesystem): reading them one after another would wait on each. Up to READ_AHEAD
  // reads are in flight at once.
  const reads: { at: number; start: number; present: number }[] = [];
  let at = 0;
  for (const e of extents) {
    const start = e.startBlock * blockSize;
    const bytes = e.blockCount * blockSize;
    const present = Math.max(0, Math.min(bytes, image.size - start));
    if (present > 0) reads.push({ at, start, present });
    // Past the image's end: zeros (a reused buffer holds old bytes there).
    if (present < bytes) out.fill(0, at + present, at + bytes);
    at += bytes;
  }
  for (let i = 0; i < reads.length; i += READ_AHEAD) {
    await Promise.all(reads.slice(i, i + READ_AHEAD).map((r) => readFully(image, out.subarray(r.at), r.present, r.start)));
  }
  return out;
}

/** Reads readExtents keeps in flight: enough to keep libuv's 4 threads and the device queue busy. */
const READ_AHEAD = 16;

/**
 * The image in consecutive windows of `size` bytes (the last may be shorter), reading the next
 * window while the caller works on the current one. Each yielded view is valid until the next
 * iteration: two buffers take turns.
 */
export async function* readWindows(image: OpenImage, size: number, length = image.size): AsyncGenerator<{ pos: number; data: Uint8Array }> {
  const buffers = [new Uint8Array(size), new Uint8Array(size)];
  const read = (pos: number, buffer: Uint8Array) => {
    const n = Math.min(size, length - pos);
    return readFully(image, buffer, n, pos).then(() => buffer.subarray(0, n));
  };
  let next = length > 0 ? read(0, buffers[0]!) : undefined;
  for (let pos = 0, turn = 0; next; pos += size, turn ^= 1) {
    const data = await next;
    next = pos + size < length ? read(pos + size, buffers[turn ^ 1]!) : undefined;
    next?.catch(() => {}); // awaited on the next iteration; an early exit must not leave it unhandled
    yield { pos, data };
  }
}
