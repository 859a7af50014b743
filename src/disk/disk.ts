/**
 * Whole disks (an image file or a whole-disk block device) as arrays of logical sectors, for the
 * GPT commands: the codec in src/gpt/ works on plain buffers, this file reads and writes them.
 *
 * Sector size: a block device reports its logical sector size in sysfs
 * (/sys/dev/block/MAJ:MIN/queue/logical_block_size: 512, or 4096 on 4Kn disks and loop devices
 * made with --sector-size 4096). An image file has none; the GPT header says which: it sits at
 * LBA 1, so "EFI PART" at byte 512 means 512-byte sectors and at byte 4096 means 4096. A caller may
 * also say.
 */
import { closeSync, constants, openSync, promises as fsp, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { FastPatchError, ioError } from '../errors.js';
import { wasmApi } from '../wasm/webassembly.js';
import { imageSize, majorMinor, readFully, targetPlace, writeAllAt } from '../io/device.js';
import { fileKind } from '../io/safe-files.js';

export interface Disk {
  handle: fsp.FileHandle;
  path: string;
  sectorSize: number;
  /** Logical sectors on the disk. */
  sectors: number;
  isBlockDevice: boolean;
  writable: boolean;
}

const SECTOR_SIZES = [512, 4096] as const;
const SIGNATURE = Buffer.from('EFI PART', 'latin1');

/**
 * Opens a disk. Block devices are opened without O_EXCL: a mounted partition (the running slot)
 * must not stop a priority flip. Only a regular file or a block device is opened (a FIFO would
 * block the open forever). For writing, the rule of apply's target (device.ts) holds: outside /dev
 * a disk path that is a symbolic link, or a regular file with several names (hard links), is
 * refused (another user could plant one in a shared folder, pointing at a file of root's); under
 * /dev symlinks are followed (udev's /dev/disk/by-*). Throws FastPatchError('IO' | 'USAGE').
 */
export async function openDisk(path: string, options: { write?: boolean; sectorSize?: number } = {}): Promise<Disk> {
  if (options.sectorSize !== undefined && !(SECTOR_SIZES as readonly number[]).includes(options.sectorSize)) {
    throw new FastPatchError('USAGE', `sector size must be 512 or 4096, got ${options.sectorSize}`);
  }
  let handle: fsp.FileHandle;
  let devicesOnly = false;
  try {
    const target = await fsp.stat(path);
    if (!target.isFile() && !target.isBlockDevice()) throw new FastPatchError('USAGE', `disk ${path} is ${fileKind(target)}: give a disk image file or a whole-disk block device`);
    let flags = (options.write ? constants.O_RDWR : constants.O_RDONLY) | constants.O_NONBLOCK;
    let openPath = path;
    if (options.write) {
      const place = await targetPlace(path, 'disk');
      devicesOnly = place.devicesOnly;
      if (!place.devicesOnly) {
        const link = await fsp.lstat(place.full);
        if (link.isSymbolicLink()) throw new FastPatchError('USAGE', `disk ${path} is a symbolic link: give the path it points to (links are not followed outside /dev, where another user could plant one)`);
        flags |= constants.O_NOFOLLOW;
        openPath = place.full;
      }
    }
    handle = await fsp.open(openPath, flags);
  } catch (err) {
    if (err instanceof FastPatchError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new FastPatchError('USAGE', `disk ${path} became a symbolic link while being opened; refusing to follow it`, { cause: err });
    throw ioError(`open disk ${path}`, err);
  }
  try {
    const stats = await handle.stat();
    // Checked again on what was opened (it may have been swapped since the stat).
    if (!stats.isFile() && !stats.isBlockDevice()) throw new FastPatchError('USAGE', `disk ${path} is ${fileKind(stats)}: give a disk image file or a whole-disk block device`);
    // /dev/shm is writable by anyone: under /dev only a block device is written.
    if (devicesOnly && !stats.isBlockDevice()) throw new FastPatchError('USAGE', `disk ${path} is not a block device: under /dev only a block device can be written`);
    if (options.write && stats.isFile() && stats.nlink > 1) {
      throw new FastPatchError('USAGE', `disk ${path} has ${stats.nlink} names (hard links): writing it would change the file under every name; give a disk image with one name (cp it)`);
    }
    const bytes = await imageSize(stats, path);
    let sectorSize = options.sectorSize;
    if (stats.isBlockDevice()) {
      const sysfs = `/sys/dev/block/${majorMinor(stats.rdev)}/queue/logical_block_size`;
      const reported = Number((await readFile(sysfs, 'utf8').catch(() => '512')).trim());
      if (sectorSize !== undefined && sectorSize !== reported) {
        throw new FastPatchError('USAGE', `${path} has ${reported}-byte sectors, not ${sectorSize}`);
      }
      sectorSize = reported;
    } else if (sectorSize === undefined) {
      sectorSize = await detectSectorSize(handle, bytes);
    }
    if (!(SECTOR_SIZES as readonly number[]).includes(sectorSize)) throw new FastPatchError('USAGE', `${path}: unsupported sector size ${sectorSize}`);
    return { handle, path, sectorSize, sectors: Math.floor(bytes / sectorSize), isBlockDevice: stats.isBlockDevice(), writable: options.write === true };
  } catch (err) {
    await handle.close();
    throw err instanceof FastPatchError ? err : ioError(`open disk ${path}`, err);
  }
}

/** 512 unless a GPT header signature sits at byte 4096 and not at byte 512. */
async function detectSectorSize(handle: fsp.FileHandle, bytes: number): Promise<number> {
  const probe = Buffer.alloc(8);
  for (const size of SECTOR_SIZES) {
    if (bytes < 2 * size) continue;
    const { bytesRead } = await handle.read(probe, 0, 8, size);
    if (bytesRead === 8 && probe.equals(SIGNATURE)) return size;
  }
  return 512;
}

/** Reads `count` sectors from `lba`. Throws FastPatchError('IO') for a range outside the disk. */
export async function readSectors(disk: Disk, lba: number, count: number): Promise<Uint8Array> {
  if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(count) || lba < 0 || count < 0 || lba + count > disk.sectors) {
    throw new FastPatchError('IO', `${disk.path}: sectors ${lba}+${count} lie outside its ${disk.sectors} sectors`);
  }
  const out = new Uint8Array(count * disk.sectorSize);
  await readFully(disk, out, out.length, lba * disk.sectorSize);
  return out;
}

/** Writes whole sectors at `lba` (no flush: call flushDisk at the commit protocol's points). */
export async function writeSectors(disk: Disk, lba: number, data: Uint8Array): Promise<void> {
  if (!disk.writable) throw new Error(`${disk.path} was opened read-only`);
  if (data.length % disk.sectorSize !== 0 || lba < 0 || lba + data.length / disk.sectorSize > disk.sectors) {
    throw new FastPatchError('IO', `${disk.path}: a write of ${data.length} bytes at sector ${lba} does not fit its sectors`);
  }
  await writeAllAt(disk.handle, data, lba * disk.sectorSize, disk.path);
}

/** fsync: on a block device this also flushes the device's write cache. */
export async function flushDisk(disk: Disk): Promise<void> {
  try {
    await disk.handle.sync();
  } catch (err) {
    throw ioError(`flush ${disk.path}`, err);
  }
}

/** A synchronous reader of whole sectors through the page cache (short at the end of the disk). */
export function sectorReader(disk: Disk): (lba: number, count: number) => Uint8Array {
  return (lba, count) => {
    const bytes = Buffer.alloc(count * disk.sectorSize);
    const n = readSync(disk.handle.fd, bytes, 0, bytes.length, lba * disk.sectorSize);
    return bytes.subarray(0, n);
  };
}

/**
 * A synchronous reader of whole sectors that bypasses the page cache (O_DIRECT) on a block device,
 * for reading back what a GPT transaction wrote: the bytes the device holds, not the ones the
 * kernel still caches. O_DIRECT needs a buffer aligned to the logical sector; a Node Buffer is not,
 * but a WebAssembly memory starts on a page boundary, so reads land there and are copied out. On an
 * image file the page cache is the file's contents, and a plain read is returned. Close when done.
 */
export function directSectorReader(disk: Disk): { read: (lba: number, count: number) => Uint8Array; close: () => void } {
  if (!disk.isBlockDevice) return { read: sectorReader(disk), close: () => {} };
  let fd: number;
  try {
    fd = openSync(disk.path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (err) {
    throw ioError(`open ${disk.path} for reading back`, err);
  }
  const memory = new wasmApi.Memory({ initial: 1 });
  return {
    read: (lba, count) => {
      const length = count * disk.sectorSize;
      const pages = Math.ceil(length / 65536) - memory.buffer.byteLength / 65536;
      if (pages > 0) memory.grow(pages);
      const view = new Uint8Array(memory.buffer, 0, length);
      let done = 0;
      try {
        while (done < length) {
          const n = readSync(fd, view, done, length - done, lba * disk.sectorSize + done);
          if (n === 0) break;
          done += n;
        }
      } catch (err) {
        throw ioError(`read back ${disk.path}`, err);
      }
      return view.slice(0, done);
    },
    close: () => closeSync(fd),
  };
}
