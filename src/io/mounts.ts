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

/** MAJ:MIN of every mounted block device. */
async function mountedDevices(): Promise<Set<string>> {
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
  let diskDir: string;
  try {
    diskDir = await realpath(`/sys/dev/block/${diskMajorMinor}`);
  } catch {
    return users;
  }
  const disk = basename(diskDir);
  for (const name of await readdir(diskDir).catch(() => [] as string[])) {
    if (!name.startsWith(disk)) continue;
    const dir = join(diskDir, name);
    const read = (f: string) => readFile(join(dir, f), 'utf8').then((s) => s.trim()).catch(() => undefined);
    const [start, size, dev] = await Promise.all([read('start'), read('size'), read('dev')]);
    if (start === undefined || size === undefined || dev === undefined) continue;
    const from = Number(start) * 512;
    const to = from + Number(size) * 512;
    if (to <= offset || from >= offset + length) continue;
    if (mounted.has(dev)) users.push(`partition ${name} is mounted`);
    const holders = await readdir(join(dir, 'holders')).catch(() => [] as string[]);
    if (holders.length > 0) users.push(`partition ${name} is held by ${holders.join(', ')}`);
  }
  return users;
}
