import { constants, promises as fsp, type Stats } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FastPatchError, ioError } from '../errors.js';
import { bytesInUse, describeRange, majorMinorOf, physicalRanges, sharedBytes } from './identity.js';
import { LoopLookup, rangeUsers } from './mounts.js';
import { checkNoPlantedLinks, createExclusive, NO_NEW_FILES } from './safe-files.js';

/** An open image: a regular file or a block device, with its size in bytes. */
export interface OpenImage {
  handle: fsp.FileHandle;
  path: string;
  size: number;
  isBlockDevice: boolean;
  /** True when openTarget created the file: it reads as zeros everywhere. */
  created: boolean;
  /**
   * Equal for two opens of the same file or device, whatever path led there. Not for deciding whether
   * two images share bytes (a loop device and its file differ here): see checkDisjoint.
   */
  identity: string;
  /**
   * Where the image starts inside the file or device (a partition's byte range inside a whole
   * disk); reads and writes add it. 0 when absent. `size` is then the range's length.
   */
  offset?: number;
  /** True when the target is a whole block device this process holds with O_EXCL. */
  exclusive?: boolean;
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

/** MAJ:MIN of a device number (stats.rdev), as sysfs and /proc name it. */
export const majorMinor = majorMinorOf;

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

/**
 * Opens an image read-only. `what` names it in errors ("source image"); a missing path says so in
 * words, with `missingHint` (what to give instead) after it. A FIFO, socket or character device is
 * refused before it is opened (opening a FIFO would wait for a writer). Throws FastPatchError('IO').
 */
export async function openImageForRead(path: string, what = 'image', missingHint = ''): Promise<OpenImage> {
  const before = await fsp.stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new FastPatchError('IO', `${what} ${path} does not exist${missingHint ? `: ${missingHint}` : ''}`, { cause: err });
    throw ioError(`open ${what} ${path}`, err);
  });
  if (!before.isFile() && !before.isBlockDevice()) throw new FastPatchError('IO', `${what} ${path} is neither a regular file nor a block device`);
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, constants.O_RDONLY);
  } catch (err) {
    throw ioError(`open ${what} ${path}`, err);
  }
  try {
    const stats = await handle.stat();
    if (stats.dev !== before.dev || stats.ino !== before.ino) throw new FastPatchError('IO', `${what} ${path} was replaced while being opened; try again`);
    return { handle, path, size: await imageSize(stats, path), isBlockDevice: stats.isBlockDevice(), created: false, identity: identityOf(stats) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Folders where nothing is a target unless it is a block device. */
const DEVICES_ONLY = ['/dev', '/proc', '/sys'];

function isUnder(path: string, roots: readonly string[]): boolean {
  return roots.some((root) => path === root || path.startsWith(`${root}/`));
}

/**
 * Where a path to be written leads: the real folder it is in (no planted link on the way), the
 * path through that folder, and whether it is a device folder (only block devices are written
 * there). `what` names the path in errors ("target", "disk"). Shared by apply's targets and the
 * GPT disks the gpt commands write (disk.ts).
 */
export async function targetPlace(path: string, what = 'target'): Promise<{ folder: string; full: string; devicesOnly: boolean }> {
  const folder = await realpath(dirname(resolve(path))).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new FastPatchError('IO', `${what} ${path}: folder ${dirname(path)} does not exist; create it first or check the path`, { cause: err });
    throw ioError(`${what} ${path}: folder ${dirname(path)}`, err);
  });
  await checkNoPlantedLinks(dirname(path), `${what} ${path}`);
  const full = join(folder, basename(path));
  return { folder, full, devicesOnly: isUnder(folder, DEVICES_ONLY) || isUnder(full, DEVICES_ONLY) };
}

/**
 * Opens an existing target for writing, without truncating it; undefined when the path does not
 * exist and a new file may be created there (createTarget). The rules (README, "Targets"):
 * - under /dev (after resolving the folder's symlinks) a target must be an existing block device,
 *   reached through symlinks if need be (udev's /dev/disk/by-*); nothing is ever created there, nor
 *   under /proc, /sys or /run;
 * - anywhere else the last component is never followed if it is a symlink (another user could
 *   have planted it in a shared folder to point at a file of root's): give the real path; and a
 *   regular file with more than one name (a planted hard link) is refused likewise;
 * - a target is a regular file or a block device; a whole block device must not be in use (O_EXCL),
 *   and in a byte range of one (`range`) no partition overlapping the range may be in use.
 * Throws FastPatchError('USAGE') for a path that cannot be a target, ('IO') for the rest.
 */
export async function openExistingTarget(path: string, range?: { offset: number; length: number }): Promise<OpenImage | undefined> {
  const place = await targetPlace(path);
  let handle: fsp.FileHandle;
  try {
    if (place.devicesOnly) {
      const stats = await fsp.stat(path).catch(() => undefined);
      if (!stats) throw new FastPatchError('USAGE', `target ${path} does not exist: a target under /dev must be an existing block device (nothing is created there); check the name with lsblk`);
      if (!stats.isBlockDevice()) throw new FastPatchError('USAGE', `target ${path} is not a block device: under /dev only a block device can be a target`);
      handle = await fsp.open(path, constants.O_RDWR);
    } else {
      const link = await fsp.lstat(place.full).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw ioError(`target ${path}`, err);
      });
      if (!link) {
        if (isUnder(place.full, NO_NEW_FILES)) throw new FastPatchError('USAGE', `target ${path} does not exist, and no image file is created under ${NO_NEW_FILES.join(', ')}; give an existing device or a file elsewhere`);
        return undefined;
      }
      if (link.isSymbolicLink()) throw new FastPatchError('USAGE', `target ${path} is a symbolic link: give the path it points to (links are not followed outside /dev, where another user could plant one)`);
      if (!link.isFile() && !link.isBlockDevice()) throw new FastPatchError('IO', `target ${path} is ${link.isDirectory() ? 'a folder' : 'neither a regular file nor a block device'}; give an image file or a block device`);
      handle = await fsp.open(place.full, constants.O_RDWR | constants.O_NOFOLLOW);
    }
  } catch (err) {
    if (err instanceof FastPatchError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new FastPatchError('USAGE', `target ${path} became a symbolic link while being opened; refusing to follow it`, { cause: err });
    throw ioError(`open target ${path}`, err);
  }
  try {
    let stats = await handle.stat();
    if (!stats.isFile() && !stats.isBlockDevice()) throw new FastPatchError('IO', `target ${path} is neither a regular file nor a block device`);
    // Checked again on what was opened: /dev/shm is writable by anyone.
    if (place.devicesOnly && !stats.isBlockDevice()) throw new FastPatchError('USAGE', `target ${path} is not a block device: under /dev only a block device can be a target`);
    // A hard link planted in a shared folder would redirect the write like a symlink.
    if (stats.isFile() && stats.nlink > 1) throw new FastPatchError('USAGE', `target ${path} has ${stats.nlink} names (hard links): writing it would change the file under every name; give a file with one name (cp it)`);
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
      const again = await exclusive.stat();
      await handle.close();
      handle = exclusive;
      if (!again.isBlockDevice() || again.rdev !== stats.rdev) throw new FastPatchError('IO', `target ${path} changed while being opened; try again`);
      stats = again;
    }
    return { handle, path, size: await imageSize(stats, path), isBlockDevice: stats.isBlockDevice(), created: false, identity: identityOf(stats), exclusive: stats.isBlockDevice() && !range };
  } catch (err) {
    await handle.close();
    throw err instanceof FastPatchError ? err : ioError(`target ${path}`, err);
  }
}

/**
 * Creates a missing target as a new regular file of `size` bytes (sparse: it reads as zeros),
 * exclusively: never through a symlink, never over a file that appeared meanwhile. Call only when
 * openExistingTarget returned undefined. Throws FastPatchError('IO').
 */
export async function createTarget(path: string, size: number): Promise<OpenImage> {
  const place = await targetPlace(path);
  if (isUnder(place.full, NO_NEW_FILES)) throw new FastPatchError('USAGE', `target ${path}: no image file is created under ${NO_NEW_FILES.join(', ')}`);
  let handle: fsp.FileHandle;
  try {
    handle = await createExclusive(place.full, 0o644);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ELOOP') throw new FastPatchError('IO', `target ${path} appeared while FastPatch was about to create it; check what it is and run again`, { cause: err });
    throw ioError(`create target ${path}`, err);
  }
  try {
    await handle.truncate(size);
    const stats = await handle.stat();
    return { handle, path, size: stats.size, isBlockDevice: false, created: true, identity: identityOf(stats) };
  } catch (err) {
    await handle.close();
    await removeCreatedTarget(place.full, undefined);
    throw ioError(`create target ${path}`, err);
  }
}

/**
 * Removes a target file this run created, if `path` still names it (same dev:ino as `image`'s
 * handle, or unconditionally when `image` is undefined and the caller just created it). Never throws.
 */
export async function removeCreatedTarget(path: string, image: OpenImage | undefined): Promise<void> {
  try {
    if (image) {
      const [mine, now] = await Promise.all([image.handle.stat(), fsp.lstat(path)]);
      if (mine.dev !== now.dev || mine.ino !== now.ino) return;
    }
    await fsp.unlink(path);
  } catch {
    // Already gone, or no longer ours: leave it.
  }
}

/**
 * Opens a target for writing without truncating it (openExistingTarget), or creates a missing one
 * as an empty regular file of `createSize` bytes (createTarget). Throws FastPatchError.
 */
export async function openTarget(path: string, createSize: number, range?: { offset: number; length: number }): Promise<OpenImage> {
  return (await openExistingTarget(path, range)) ?? createTarget(path, createSize);
}

/**
 * Refuses to write `target` (the whole file, device or range) while another name of its bytes is in use: a loop
 * device over the target file (at any offset, whatever its size limit), a partition or loop device
 * over the target device, mounted, held or claimed (identity.ts, bytesInUse). Throws
 * FastPatchError('IO') naming each user.
 */
export async function checkOtherNamesFree(target: OpenImage): Promise<void> {
  const stats = await target.handle.stat();
  const ranges = await physicalRanges(stats, target.path, target.offset ?? 0, Math.max(1, target.size));
  const own = stats.isBlockDevice() ? [majorMinor(stats.rdev)] : [];
  const users = await bytesInUse(ranges, own, target.exclusive === true);
  if (users.length > 0) {
    const where = target.offset !== undefined ? ` bytes ${target.offset}+${target.size}` : '';
    throw new FastPatchError('IO', `target ${target.path}${where} is in use under another name: ${users.join('; ')}; refusing to write there (unmount it, or detach the loop device)`);
  }
}

/**
 * Refuses a source and target that share bytes, whatever names lead to them (identity.ts): the
 * same file or device, a loop device and its backing file, a partition and its disk, two loop
 * devices over one file with overlapping windows. Each is taken whole as given (a file, a device,
 * or the byte range of one, e.g. a slot), not only the bytes this payload reads or writes: a
 * target that holds the source somewhere is a mistake even where this image would not reach it.
 * Disjoint ranges of one file or disk are fine. Throws FastPatchError('USAGE') naming both paths
 * and the shared range.
 */
export async function checkDisjoint(source: OpenImage, target: OpenImage): Promise<void> {
  const [s, t] = await Promise.all([source.handle.stat(), target.handle.stat()]);
  const loops = new LoopLookup();
  const read = await physicalRanges(s, source.path, source.offset ?? 0, Math.max(1, source.size), loops);
  const written = await physicalRanges(t, target.path, target.offset ?? 0, Math.max(1, target.size), loops);
  const shared = sharedBytes(read, written);
  if (shared?.uncertain !== undefined) {
    throw new FastPatchError('USAGE', `target ${target.path} may be the source image ${source.path}: ${shared.uncertain}; refusing (check that util-linux losetup works, or detach the loop device)`);
  }
  if (shared) {
    throw new FastPatchError('USAGE', `target ${target.path} is the source image ${source.path}: both reach ${describeRange(shared)}; a delta is applied to the other slot`);
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
