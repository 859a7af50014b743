/**
 * Which parts of a whole-disk block device are in use: a slot update writes one partition's byte
 * range while another partition of the same disk (the running /usr) is mounted. O_EXCL on the whole
 * disk would refuse that, so for a byte range FastPatch instead checks that no mounted filesystem
 * and no device-mapper or other holder sits on a partition overlapping the range.
 *
 * Linux only: /proc/self/mountinfo (field 3 is MAJ:MIN of the mounted device) and sysfs
 * (/sys/dev/block/MAJ:MIN/{start,size,holders} of the disk's partitions, in 512-byte units).
 */
import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { FastPatchError } from '../errors.js';

/** A loop device's backing file and the window of it the device shows, as sysfs tells. */
export interface LoopBacking {
  /**
   * Path of the backing file (or block device) as the kernel names it now (a rename shows). When
   * the file was deleted, the path it had, with `deleted` true.
   */
  file: string;
  deleted: boolean;
  /** Where the device starts inside the file, in bytes. */
  offset: number;
  /** Bytes the device is limited to; 0 for "up to the end of the file". */
  sizeLimit: number;
}

/** Sysfs numbers are decimal; anything else (or above 2^53) is refused rather than guessed. */
export function sysfsNumber(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (t === undefined || !/^\d{1,16}$/.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : undefined;
}

const DELETED = ' (deleted)';

/**
 * The backing file of the loop device MAJ:MIN, from /sys/dev/block/MAJ:MIN/loop/{backing_file,
 * offset,sizelimit}; undefined when MAJ:MIN is not an attached loop device. Throws
 * FastPatchError('IO') when sysfs holds numbers out of bounds (offset or limit past 2^53 bytes).
 */
export async function loopBacking(majorMinor: string): Promise<LoopBacking | undefined> {
  if (!/^\d+:\d+$/.test(majorMinor)) throw new TypeError(`majorMinor: expected MAJ:MIN, got ${JSON.stringify(majorMinor)}`);
  const dir = `/sys/dev/block/${majorMinor}/loop`;
  const read = (f: string) => readFile(join(dir, f), 'utf8').catch(() => undefined);
  const [backing, offsetText, limitText] = await Promise.all([read('backing_file'), read('offset'), read('sizelimit')]);
  if (backing === undefined) return undefined;
  // The file's path ends with one newline; a name may itself end in spaces, so only that is cut.
  let file = backing.endsWith('\n') ? backing.slice(0, -1) : backing;
  if (file === '') return undefined;
  const deleted = file.endsWith(DELETED);
  if (deleted) file = file.slice(0, -DELETED.length);
  const offset = sysfsNumber(offsetText);
  const sizeLimit = sysfsNumber(limitText ?? '0');
  if (offset === undefined || sizeLimit === undefined) {
    throw new FastPatchError('IO', `loop device ${majorMinor}: unreadable offset or size limit in ${dir} (${JSON.stringify(offsetText)}, ${JSON.stringify(limitText)})`);
  }
  return { file, deleted, offset, sizeLimit };
}

/** MAJ:MIN of every mounted block device (this mount namespace). */
export async function mountedDevices(): Promise<Set<string>> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return new Set(info.split('\n').map((line) => line.split(' ')[2]).filter((d): d is string => d !== undefined && /^\d+:\d+$/.test(d)));
}

/**
 * Descriptions of what uses bytes [offset, offset + length) of the whole disk MAJ:MIN, or of the
 * whole disk itself: "partition loop0p4 is mounted", "partition sda4 is held by dm-0". Empty when
 * the range is free.
 */
export async function rangeUsers(diskMajorMinor: string, offset: number, length: number): Promise<string[]> {
  const mounted = await mountedDevices();
  const users: string[] = [];
  if (mounted.has(diskMajorMinor)) users.push('the whole disk is mounted');
  for (const part of await diskPartitions(diskMajorMinor)) {
    if (part.offset + part.length <= offset || part.offset >= offset + length) continue;
    if (mounted.has(part.dev)) users.push(`partition ${part.name} is mounted`);
    if (part.holders.length > 0) users.push(`partition ${part.name} is held by ${part.holders.join(', ')}`);
  }
  return users;
}

/** A partition of a whole disk as the kernel knows it (sysfs), in bytes. */
export interface KernelPartition {
  /** Kernel name, also the node under /dev: "loop0p4", "sda4", "nvme0n1p4". */
  name: string;
  /** MAJ:MIN of the partition device. */
  dev: string;
  offset: number;
  length: number;
  /** Devices stacked on it (device-mapper, md). */
  holders: string[];
}

/** The partitions the kernel has registered for the whole disk MAJ:MIN (none for an image file's loop device without partx). */
export async function diskPartitions(diskMajorMinor: string): Promise<KernelPartition[]> {
  let diskDir: string;
  try {
    diskDir = await realpath(`/sys/dev/block/${diskMajorMinor}`);
  } catch {
    return [];
  }
  const disk = basename(diskDir);
  const parts: KernelPartition[] = [];
  for (const name of await readdir(diskDir).catch(() => [] as string[])) {
    if (!name.startsWith(disk)) continue;
    const dir = join(diskDir, name);
    const read = (f: string) => readFile(join(dir, f), 'utf8').then((s) => s.trim()).catch(() => undefined);
    const [start, size, dev] = await Promise.all([read('start'), read('size'), read('dev')]);
    if (start === undefined || size === undefined || dev === undefined) continue;
    // sysfs counts in 512-byte units whatever the logical sector size.
    const holders = await readdir(join(dir, 'holders')).catch(() => [] as string[]);
    parts.push({ name, dev, offset: Number(start) * 512, length: Number(size) * 512, holders });
  }
  return parts;
}
