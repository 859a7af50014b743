/**
 * Which physical bytes an image names. The same bytes have many names: a file and the loop device
 * over it (at an offset, with a size limit), two loop devices over one file, a partition and its
 * disk, a loop device over a loop device, a partition of a loop device over a file. Comparing
 * MAJ:MIN or inodes sees none of these, so every name is resolved down to the object that really
 * holds the bytes (a regular file by MAJ:MIN:INO of its filesystem and inode, or a whole disk that
 * is not a loop device by MAJ:MIN) and a byte range of it; two names share bytes when their ranges
 * of one object overlap.
 *
 * Linux only, from sysfs: /sys/dev/block/MAJ:MIN/{partition,start,size} for partitions (512-byte
 * units); for loop devices, the backing file's device and inode, offset and size limit as the
 * kernel holds them (losetup, mounts.ts LoopLookup: never the backing file's path, which may name
 * another file); a loop device whose backing cannot be identified may hold any regular file's
 * bytes, and is treated so (fail closed); and
 * slaves/ for device-mapper and md devices, whose tables are not in sysfs: such a device is taken
 * to use the whole of every device under it (refusing too much rather than too little).
 */
import { constants, promises as fsp, type Stats } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FastPatchError } from '../errors.js';
import { LoopLookup, mountedDevices, sysfsNumber } from './mounts.js';

/** The base of a range that may be any regular file (an unidentifiable loop device's backing). */
export const ANY_FILE = 'any file';

/** "file MAJ:MIN:INO": the base of a regular file's bytes, from its stat. */
export function fileBase(stats: Pick<Stats, 'dev' | 'ino'>): string {
  return `file ${majorMinorOf(stats.dev)}:${stats.ino}`;
}

/** Bytes [offset, offset + length) of one object that holds bytes. */
export interface PhysicalRange {
  /**
   * The object: "file MAJ:MIN:INO" (a regular file: its filesystem's device and its inode),
   * "block MAJ:MIN" (a whole disk that is not a loop device), or ANY_FILE (a loop device whose
   * backing file cannot be identified: it may be any regular file, anywhere in it).
   */
  base: string;
  /** Set on ranges that only MAY be these bytes (ANY_FILE): why it cannot be told. */
  uncertain?: string;
  /** The object in words, for messages: a path or a device name. */
  name: string;
  offset: number;
  length: number;
}

/** Stacking deeper than this (loop over loop over partition ...) is refused rather than followed. */
const MAX_DEPTH = 16;

function blockDevice(stats: Stats): string {
  return majorMinorOf(stats.rdev);
}

// Linux dev_t layout (glibc's gnu_dev_major/minor).
export function majorMinorOf(rdev: number): string {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

const readSys = (path: string) => readFile(path, 'utf8').catch(() => undefined);

/** A sysfs count of 512-byte units as bytes; throws when it is missing or out of bounds. */
async function sectorsAt(path: string): Promise<number> {
  const n = sysfsNumber(await readSys(path));
  if (n === undefined || !Number.isSafeInteger(n * 512)) throw new FastPatchError('IO', `unreadable or out-of-bounds number in ${path}`);
  return n * 512;
}

/** Ranges [offset, offset + length) of `pieces` when they are one object's range; all of them otherwise. */
function within(pieces: PhysicalRange[], offset: number, length: number): PhysicalRange[] {
  if (pieces.length !== 1) return pieces;
  const p = pieces[0]!;
  const start = Math.min(offset, p.length);
  const at = p.offset + start;
  if (!Number.isSafeInteger(at)) throw new FastPatchError('IO', `${p.name}: offset ${p.offset}+${start} lies past 2^53 bytes; refusing to guess which bytes it names`);
  return [{ ...p, offset: at, length: Math.max(0, Math.min(length, p.length - start)) }];
}

/**
 * The physical bytes of the whole block device MAJ:MIN (see the module comment). `depth` counts the
 * devices already on the way down (stacking is refused past MAX_DEPTH). Throws FastPatchError('IO')
 * on sysfs numbers out of bounds.
 */
export async function blockRanges(majorMinor: string, depth = 0, loops = new LoopLookup()): Promise<PhysicalRange[]> {
  if (depth > MAX_DEPTH) throw new FastPatchError('IO', `block device ${majorMinor} is stacked more than ${MAX_DEPTH} deep (loop over loop ...); refusing to guess which bytes it names`);
  let dir: string;
  try {
    dir = await realpath(`/sys/dev/block/${majorMinor}`);
  } catch {
    // Not in sysfs (no sysfs mounted): only its own number is known.
    return [{ base: `block ${majorMinor}`, name: `block device ${majorMinor}`, offset: 0, length: Number.MAX_SAFE_INTEGER }];
  }
  const name = `/dev/${dir.slice(dir.lastIndexOf('/') + 1)}`;
  const size = await sectorsAt(join(dir, 'size'));
  if ((await readSys(join(dir, 'partition'))) !== undefined) {
    const start = await sectorsAt(join(dir, 'start'));
    const disk = (await readSys(join(dirname(dir), 'dev')))?.trim();
    if (disk === undefined || !/^\d+:\d+$/.test(disk)) throw new FastPatchError('IO', `cannot tell which disk partition ${name} belongs to (${dirname(dir)}/dev)`);
    return within(await blockRanges(disk, depth + 1, loops), start, size);
  }
  const loop = await loops.get(majorMinor);
  if (loop && 'unknown' in loop) {
    return [{ base: ANY_FILE, name: loop.device, offset: 0, length: Number.MAX_SAFE_INTEGER, uncertain: `loop device ${name} is attached to a file FastPatch cannot identify (${loop.unknown}), so it may be this one` }];
  }
  if (loop) {
    // The path is only a hint (it may name another file now, or none): it counts only if it leads
    // to the very inode the kernel holds, and only then is a block device followed down.
    let backing = await stat(loop.file).catch(() => undefined);
    if (backing && `${majorMinorOf(backing.dev)}:${backing.ino}` !== loop.backing) backing = undefined;
    // Not reachable by its name here (another mount namespace, a node removed since): if it is a
    // device node this namespace also has, the inode is found among the block devices' nodes.
    backing ??= await blockNodeWithInode(loop.backing);
    if (backing?.isBlockDevice()) return within(await blockRanges(blockDevice(backing), depth + 1, loops), loop.offset, size);
    return [{ base: `file ${loop.backing}`, name: loop.file === '' ? `the backing file of ${name}` : loop.file, offset: loop.offset, length: size }];
  }
  const own: PhysicalRange = { base: `block ${majorMinor}`, name, offset: 0, length: size };
  const slaves = await readdir(join(dir, 'slaves')).catch(() => [] as string[]);
  const under: PhysicalRange[] = [own];
  for (const slave of slaves) {
    const dev = (await readSys(`/sys/class/block/${slave}/dev`))?.trim();
    if (dev !== undefined && /^\d+:\d+$/.test(dev)) under.push(...(await blockRanges(dev, depth + 1, loops)));
  }
  return under;
}

/**
 * The physical bytes of bytes [offset, offset + length) of an open file or block device whose
 * stat is `stats`. Throws FastPatchError('IO') on unreadable sysfs numbers.
 */
export async function physicalRanges(stats: Stats, path: string, offset: number, length: number, loops = new LoopLookup()): Promise<PhysicalRange[]> {
  if (stats.isBlockDevice()) return within(await blockRanges(blockDevice(stats), 0, loops), offset, length);
  return [{ base: fileBase(stats), name: path, offset, length }];
}

/** True when ranges of bases `a` and `b` may be of one object: equal, or ANY_FILE and a regular file. */
function sameObject(a: string, b: string): boolean {
  if (a === b) return a !== ANY_FILE;
  return (a === ANY_FILE && b.startsWith('file ')) || (b === ANY_FILE && a.startsWith('file '));
}

/** The first overlap of two lists of ranges: the object and the shared bytes; undefined when none. */
export function sharedBytes(a: readonly PhysicalRange[], b: readonly PhysicalRange[]): PhysicalRange | undefined {
  for (const x of a) {
    for (const y of b) {
      if (!sameObject(x.base, y.base)) continue;
      const start = Math.max(x.offset, y.offset);
      const end = Math.min(x.offset + x.length, y.offset + y.length);
      if (start >= end) continue;
      // With ANY_FILE, the shared bytes are named by the file that is known.
      const [known, maybe] = x.base === ANY_FILE ? [y, x] : [x, y];
      return { base: known.base, name: known.name, offset: start, length: end - start, ...(maybe.uncertain !== undefined ? { uncertain: maybe.uncertain } : {}) };
    }
  }
  return undefined;
}

/** "bytes 4096+1048576 of /srv/disk.img", with why it is only a may when it is. */
export function describeRange(r: PhysicalRange): string {
  return `bytes ${r.offset}+${r.length} of ${r.name}${r.uncertain !== undefined ? ` (maybe: ${r.uncertain})` : ''}`;
}

/** The stat of a block device node under /dev whose filesystem and inode are `backing` ("MAJ:MIN:INO"), if any. */
async function blockNodeWithInode(backing: string): Promise<Stats | undefined> {
  const names = await readdir('/sys/class/block').catch(() => [] as string[]);
  const blockLinks = await readdir('/dev/block').catch(() => [] as string[]);
  for (const path of [...names.map((n) => `/dev/${n}`), ...blockLinks.map((n) => `/dev/block/${n}`)]) {
    const s = await stat(path).catch(() => undefined);
    if (s?.isBlockDevice() && `${majorMinorOf(s.dev)}:${s.ino}` === backing) return s;
  }
  return undefined;
}

/** The /dev node of kernel block device `name` with number MAJ:MIN, if there is one. */
async function deviceNode(name: string, majorMinor: string): Promise<string | undefined> {
  for (const path of [`/dev/block/${majorMinor}`, `/dev/${name}`]) {
    const s = await stat(path).catch(() => undefined);
    if (s?.isBlockDevice() && blockDevice(s) === majorMinor) return path;
  }
  return undefined;
}

/**
 * Every OTHER name of bytes `ranges` that is in use: a block device (a loop device over the file at
 * any offset, a partition, a loop device over either, ...) whose bytes overlap them and that is
 * mounted, held by device-mapper or md, or claimed exclusively by any process (O_EXCL open fails
 * with EBUSY: also a mount in another mount namespace, swap, another FastPatch). Devices in
 * `except` (MAJ:MIN; the target itself, which its own open checks) are skipped; with
 * `exceptHeldExclusively` (this process holds them with O_EXCL, so none of their partitions is
 * claimed, and probing one would only meet our own claim) their partitions are not probed. Returns one
 * description per user: "/dev/loop3 (bytes 0+8388608 of /srv/disk.img) is mounted".
 */
export async function bytesInUse(ranges: readonly PhysicalRange[], except: readonly string[] = [], exceptHeldExclusively = false): Promise<string[]> {
  const names = await readdir('/sys/class/block').catch(() => [] as string[]);
  const mounted = await mountedDevices();
  const loops = new LoopLookup();
  const users: string[] = [];
  for (const name of names) {
    const dev = (await readSys(`/sys/class/block/${name}/dev`))?.trim();
    if (dev === undefined || !/^\d+:\d+$/.test(dev) || except.includes(dev)) continue;
    // A device whose bytes cannot be told may hold any file's (fail closed, as an unknown loop device).
    const own = await blockRanges(dev, 0, loops).catch((err: unknown) => [{ base: ANY_FILE, name: `/dev/${name}`, offset: 0, length: Number.MAX_SAFE_INTEGER, uncertain: `which bytes /dev/${name} holds cannot be told (${(err as Error).message})` }]);
    const shared = sharedBytes(own, ranges);
    if (!shared) continue;
    const where = `/dev/${name} (${describeRange(shared)})`;
    const holders = await readdir(`/sys/class/block/${name}/holders`).catch(() => [] as string[]);
    if (mounted.has(dev)) users.push(`${where} is mounted`);
    else if (holders.length > 0) users.push(`${where} is held by ${holders.join(', ')}`);
    // A disk whose partitions the kernel knows refuses O_EXCL while any partition is claimed, even
    // one outside the range: its overlapping partitions are probed each instead.
    else if (!(await hasPartitions(name)) && !(exceptHeldExclusively && except.includes(await diskOf(name) ?? '')) && (await claimed(name, dev))) users.push(`${where} is in use (claimed exclusively: mounted elsewhere, swap, or another program)`);
  }
  return users;
}

/** MAJ:MIN of the disk a partition belongs to; undefined for a whole device. */
async function diskOf(name: string): Promise<string | undefined> {
  if ((await readSys(`/sys/class/block/${name}/partition`)) === undefined) return undefined;
  return (await readSys(`/sys/class/block/${name}/../dev`))?.trim();
}

async function hasPartitions(name: string): Promise<boolean> {
  const entries = await readdir(`/sys/class/block/${name}`).catch(() => [] as string[]);
  return entries.some((e) => e.startsWith(name) && e !== name);
}

/** True if the block device refuses an exclusive open (EBUSY): something has claimed it. */
async function claimed(name: string, majorMinor: string): Promise<boolean> {
  const node = await deviceNode(name, majorMinor);
  if (node === undefined) return false;
  try {
    const handle = await fsp.open(node, constants.O_RDONLY | constants.O_EXCL);
    await handle.close();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EBUSY';
  }
}

/**
 * What uses bytes [offset, offset + length) of the file or block device at `path` under another
 * name (bytesInUse): for an image file, the loop devices over it (at any offset, with partitions)
 * that are mounted, held or claimed. The disk itself is not counted. Empty when free. For callers
 * that must tell which slot of a disk image runs, as rangeUsers (mounts.ts) does for a block device.
 */
export async function pathRangeUsers(path: string, offset: number, length: number): Promise<string[]> {
  const stats = await stat(path);
  const ranges = await physicalRanges(stats, path, offset, length);
  return bytesInUse(ranges, stats.isBlockDevice() ? [majorMinorOf(stats.rdev)] : []);
}
