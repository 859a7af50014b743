/**
 * Which parts of a whole-disk block device are in use: a slot update writes one partition's byte
 * range while another partition of the same disk (the running /usr) is mounted. O_EXCL on the whole
 * disk would refuse that, so for a byte range FastPatch instead checks that no mounted filesystem
 * and no device-mapper or other holder sits on a partition overlapping the range.
 *
 * Linux only: /proc/self/mountinfo (field 3 is MAJ:MIN of the mounted device) and sysfs
 * (/sys/dev/block/MAJ:MIN/{start,size,holders} of the disk's partitions, in 512-byte units).
 * Loop devices' backing files come from util-linux `losetup --json` (LOOP_GET_STATUS64: the
 * backing file's device and inode, which a deleted, renamed or other-namespace path cannot hide);
 * sysfs's loop/backing_file is a path only, so it names files in messages and decides nothing.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

/**
 * A loop device's backing file and the window of it the device shows. The file is known by what the
 * kernel holds open (LOOP_GET_STATUS64's lo_device and lo_inode, through util-linux losetup), never
 * by its path: a path can name another file (a file literally named "x (deleted)", a mount only
 * another namespace sees, a hard link removed since, a name too long for sysfs).
 */
export interface LoopBacking {
  /** The loop device's node as losetup names it ("/dev/loop3"). */
  device: string;
  /** The backing file's path as the kernel last knew it: for messages only, never for identity. */
  file: string;
  /** "MAJ:MIN:INO": the filesystem (st_dev) and inode of the backing file (or of the device node). */
  backing: string;
  /** Where the device starts inside the file, in bytes. */
  offset: number;
  /** Bytes the device is limited to; 0 for "up to the end of the file". */
  sizeLimit: number;
}

/** A loop device attached to something losetup could not identify: why, for the refusal. */
export interface UnknownLoop {
  device: string;
  unknown: string;
}

/** Sysfs numbers are decimal; anything else (or above 2^53) is refused rather than guessed. */
export function sysfsNumber(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (t === undefined || !/^\d{1,16}$/.test(t)) return undefined;
  const n = Number(t);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** "MAJ:MIN" with both parts within a dev_t's 12 and 20 bits (and their 32-bit extensions); undefined otherwise. */
function majorMinorText(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d{1,10}):(\d{1,10})\s*$/.exec(value);
  if (!m) return undefined;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major <= 0xffffffff && minor <= 0xffffffff ? `${major}:${minor}` : undefined;
}

const count = (value: unknown): number | undefined => (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined);

/** The attached loop devices by MAJ:MIN, from `losetup --list --json`; `error` says why the list is missing or partial. */
export interface LoopTable {
  loops: Map<string, LoopBacking | UnknownLoop>;
  error?: string;
}

const LOSETUP = ['/usr/sbin/losetup', '/sbin/losetup', 'losetup'];
const LOSETUP_COLUMNS = 'NAME,MAJ:MIN,BACK-FILE,BACK-INO,BACK-MAJ:MIN,OFFSET,SIZELIMIT';

/** Parses losetup's JSON (LOSETUP_COLUMNS); entries with a field out of bounds are kept as UnknownLoop. */
export function parseLoopTable(json: string): LoopTable {
  let doc: unknown;
  try {
    doc = JSON.parse(json === '' ? '{"loopdevices":[]}' : json);
  } catch {
    return { loops: new Map(), error: 'losetup printed something that is not JSON' };
  }
  const list = (doc as { loopdevices?: unknown } | null)?.loopdevices;
  if (!Array.isArray(list)) return { loops: new Map(), error: 'losetup printed no list of loop devices' };
  const table: LoopTable = { loops: new Map() };
  for (const entry of list as Record<string, unknown>[]) {
    const dev = majorMinorText(entry?.['maj:min']);
    const device = typeof entry?.name === 'string' ? entry.name : `loop device ${dev ?? '?'}`;
    if (dev === undefined) {
      table.error = `losetup listed ${device} without a readable MAJ:MIN`;
      continue;
    }
    const backDev = majorMinorText(entry['back-maj:min']);
    const ino = count(entry['back-ino']);
    const offset = count(entry.offset);
    const sizeLimit = count(entry.sizelimit);
    if (backDev === undefined || ino === undefined || offset === undefined || sizeLimit === undefined) {
      table.loops.set(dev, { device, unknown: `losetup could not say which file backs it (device ${JSON.stringify(entry['back-maj:min'])}, inode ${JSON.stringify(entry['back-ino'])}, offset ${JSON.stringify(entry.offset)}, size limit ${JSON.stringify(entry.sizelimit)})` });
      continue;
    }
    const file = typeof entry['back-file'] === 'string' ? entry['back-file'] : '';
    table.loops.set(dev, { device, file, backing: `${backDev}:${ino}`, offset, sizeLimit });
  }
  return table;
}

function runLosetup(command: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, ['--list', '--json', '--output', LOSETUP_COLUMNS], { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr }));
      else resolvePromise(stdout);
    });
  });
}

/** Runs losetup once (the first of LOSETUP found); never throws: a failure is the table's `error`. */
export async function readLoopTable(): Promise<LoopTable> {
  let last = 'losetup (util-linux) is not installed';
  for (const command of LOSETUP) {
    try {
      return parseLoopTable(await runLosetup(command));
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT') continue;
      last = `losetup failed: ${(e.stderr ?? '').trim().split('\n')[0] || e.message.split('\n')[0]}`;
      break;
    }
  }
  return { loops: new Map(), error: last };
}

/**
 * Looks up loop devices for one check: losetup runs at most twice (once, and once more for a device
 * attached since), however many devices are asked about.
 */
export class LoopLookup {
  private table: Promise<LoopTable> | undefined;
  private refreshed = false;

  /** `read` lists the loop devices (readLoopTable; tests pass a failing one). */
  constructor(private readonly read: () => Promise<LoopTable> = readLoopTable) {}

  /**
   * The backing of the loop device MAJ:MIN; undefined when MAJ:MIN is not an attached loop device;
   * an UnknownLoop when it is one but its backing file cannot be identified (no losetup, unreadable
   * output, numbers out of bounds): callers must then assume the worst.
   */
  async get(majorMinor: string): Promise<LoopBacking | UnknownLoop | undefined> {
    if (!/^\d+:\d+$/.test(majorMinor)) throw new TypeError(`majorMinor: expected MAJ:MIN, got ${JSON.stringify(majorMinor)}`);
    // The kernel adds loop/ to a loop device's sysfs folder while it is attached (whatever its backing's name).
    const attached = await stat(`/sys/dev/block/${majorMinor}/loop`).then(() => true, () => false);
    if (!attached) return undefined;
    this.table ??= this.read();
    let table = await this.table;
    if (!table.loops.has(majorMinor) && !this.refreshed && table.error === undefined) {
      this.refreshed = true;
      this.table = this.read();
      table = await this.table;
    }
    const found = table.loops.get(majorMinor);
    if (found) return found;
    const device = `/dev/block/${majorMinor}`;
    return { device, unknown: table.error ?? 'losetup does not list it' };
  }
}

/** The backing of the loop device MAJ:MIN (LoopLookup.get, with a lookup of its own). */
export async function loopBacking(majorMinor: string, lookup = new LoopLookup()): Promise<LoopBacking | UnknownLoop | undefined> {
  return lookup.get(majorMinor);
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
