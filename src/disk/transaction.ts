/**
 * Changing slot attributes on a real disk (image file or whole-disk block device), as one
 * transaction (gpt-ab-switching.md §5.3):
 *
 *  1. read and cross-check both copies of the GPT; refuse on any problem (a corrupt or
 *     inconsistent table is repaired first, explicitly);
 *  2. compute the new entries and check the invariants on them: only bits 48-56 of slot-type
 *     entries change, at least one slot stays bootable, and the running slot (when given) stays
 *     a fallback (successful, priority > 0);
 *  3. write the changed sectors in the crash-safe order of commit.ts, flushing between phases;
 *  4. read everything back and check that the disk holds exactly the new table.
 */
import { promises as fsp } from 'node:fs';
import { FastPatchError, ioError } from '../errors.js';
import { directSectorReader, flushDisk, openDisk, sectorReader, writeSectors, type Disk } from './disk.js';
import { withDiskLock } from './lock.js';
import { commitTemp, createTempBeside, discardTemp } from '../io/safe-files.js';
import { escapeText } from '../text.js';
import { FLATCAR_USR_TYPE, SLOT_BITS_MASK, getSlotBits, isBootable, sameGuid } from '../gpt/attributes.js';
import { commitPlan, type CommitPlan, type GptRegion } from '../gpt/commit.js';
import { FLATCAR_MIN_DISK_BYTES, flatcarLayout } from '../gpt/layout.js';
import { entrySectors } from '../gpt/header.js';
import { isUsed, readGpt, writeGptPlan, type GptEntry, type GptReadResult, type GptTable, type SectorReader } from '../gpt/table.js';

export interface DiskOptions {
  /** Logical sector size of an image file (block devices report theirs). */
  sectorSize?: number;
  /** How long to wait for another program's lock on the disk (default disk/lock.ts LOCK_WAIT_SECONDS). */
  lockWaitSeconds?: number;
}

export interface SlotChangeOptions extends DiskOptions {
  /** Partition type of the slots (default: the CoreOS/Flatcar /usr type). */
  typeGuid?: string;
  /** Partition number of the slot the system runs from: it must stay a fallback. */
  running?: number;
  /**
   * Skip the "at least one slot stays bootable" check: for writing what a bootloader itself writes
   * (`gpt boot-next`), which may use up a slot's last try.
   */
  allowUnbootable?: boolean;
  /** Called with the plan before it is written (tests use it to stop part way). */
  beforeWrite?: (plan: CommitPlan) => void;
}

export interface SlotChangeResult {
  before: GptEntry[];
  after: GptEntry[];
  /** Sectors written, in order, phase by phase. */
  phases: { lba: number; role: string }[][];
}

/** Reads both copies of a disk's GPT. */
export async function readDiskGpt(path: string, options: DiskOptions = {}): Promise<GptReadResult> {
  const disk = await openNamedDisk(path, { ...(options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {}) });
  try {
    return readGpt(sectorReader(disk), disk.sectorSize, disk.sectors);
  } finally {
    await disk.handle.close();
  }
}

/** openDisk, where a missing disk says what the name must be and how to make an image. */
async function openNamedDisk(path: string, options: Parameters<typeof openDisk>[1]): Promise<Disk> {
  try {
    return await openDisk(path, options);
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code !== 'ENOENT') throw err;
    throw new FastPatchError('USAGE', `${path} does not exist: give a disk image file or a whole-disk device (\`fastpatch gpt create ${path} --size 8G\` makes an image)`, { cause: err });
  }
}

/** The used entries of a read table, or a GPT_CORRUPT error listing the problems. */
export function usableEntries(result: GptReadResult, path: string): GptEntry[] {
  if (result.problems.length > 0 || !result.table) {
    const first = result.problems[0]?.message ?? 'no valid GPT';
    const more = result.problems.length > 1 ? ` (and ${result.problems.length - 1} more)` : '';
    throw new FastPatchError('GPT_CORRUPT', `${path}: ${first}${more}; nothing changed (see \`fastpatch gpt show\`, then \`fastpatch gpt repair\`)`);
  }
  return result.table.entries.filter(isUsed);
}

/**
 * Applies `change` (used entries in, new used entries out) to the disk's slot attributes as one
 * crash-safe transaction. Throws FastPatchError('GPT_CORRUPT' | 'GPT_UNSAFE' | 'IO').
 */
export async function changeSlots(path: string, change: (entries: GptEntry[]) => GptEntry[], options: SlotChangeOptions = {}): Promise<SlotChangeResult> {
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  return editDisk(path, options, async (disk, read) => {
    const result = readGpt(read, disk.sectorSize, disk.sectors);
    const before = usableEntries(result, path);
    const after = change(before.map((e) => ({ ...e })));
    checkInvariants(before, after, typeGuid, options.running, options.allowUnbootable === true);
    const regions = writeGptPlan({ ...result.table!, entries: after }, disk.sectorSize, disk.sectors).filter(
      (r): r is GptRegion => r.role !== 'pmbr',
    );
    const plan = commitPlan(regions, disk.sectorSize, read);
    const seen = regions.map((r) => read(r.lba, r.bytes.length / disk.sectorSize));
    options.beforeWrite?.(plan);
    await commit(disk, plan, regions, seen, read);
    return { before, after, phases: plan.map((p) => p.map((w) => ({ lba: w.lba, role: w.role }))) };
  });
}

/**
 * Opens the disk for writing and holds its advisory lock (disk/lock.ts) while `work` reads and
 * writes it, so no other partitioning tool or udev probe sees or makes a change in between.
 */
async function editDisk<T>(path: string, options: DiskOptions, work: (disk: Disk, read: SectorReader) => Promise<T>): Promise<T> {
  const disk = await openNamedDisk(path, { write: true, ...(options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {}) });
  try {
    return await withDiskLock(path, () => work(disk, sectorReader(disk)), options.lockWaitSeconds);
  } finally {
    await disk.handle.close();
  }
}

/**
 * Steps 3 and 4: writes the plan phase by phase with a flush after each, then reads every region
 * back past the page cache and compares it byte for byte with what it must hold. Just before the
 * first write the regions are read again and compared with what the change was computed from
 * (`seen`): a writer that ignored the lock, or a stale read, stops the transaction with nothing
 * written.
 */
async function commit(disk: Disk, plan: CommitPlan, regions: readonly { role: string; lba: number; bytes: Uint8Array }[], seen: readonly Uint8Array[], read: SectorReader): Promise<void> {
  regions.forEach((r, i) => {
    if (Buffer.compare(read(r.lba, r.bytes.length / disk.sectorSize), seen[i]!) !== 0) {
      throw new FastPatchError('GPT_UNSAFE', `${disk.path}: the partition table changed while it was being edited (another program?); nothing written, try again`);
    }
  });
  for (const phase of plan) {
    for (const write of phase) await writeSectors(disk, write.lba, write.bytes);
    await flushDisk(disk);
  }
  const direct = directSectorReader(disk);
  try {
    for (const r of regions) {
      if (Buffer.compare(direct.read(r.lba, r.bytes.length / disk.sectorSize), r.bytes) !== 0) {
        throw new FastPatchError('IO', `${disk.path}: sectors ${r.lba}+${r.bytes.length / disk.sectorSize} (${r.role}) read back different from what was written`);
      }
    }
  } finally {
    direct.close();
  }
}

/**
 * The checks of step 2, also for callers that must know a change is allowed before they do
 * anything else (update: before writing the image). Throws FastPatchError('GPT_UNSAFE').
 */
export function checkInvariants(before: readonly GptEntry[], after: readonly GptEntry[], typeGuid: string, running: number | undefined, allowUnbootable: boolean): void {
  const unsafe = (m: string) => new FastPatchError('GPT_UNSAFE', m);
  if (after.length !== before.length) throw unsafe('a slot change may not add or remove partitions');
  after.forEach((e, i) => {
    const old = before[i]!;
    const changed = e.attributes ^ old.attributes;
    if (e.index !== old.index || e.typeGuid !== old.typeGuid || e.uniqueGuid !== old.uniqueGuid || e.firstLba !== old.firstLba || e.lastLba !== old.lastLba || e.label !== old.label) {
      throw unsafe(`partition ${e.index}: only attribute bits may change`);
    }
    if ((changed & ~SLOT_BITS_MASK) !== 0n) throw unsafe(`partition ${e.index}: bits outside priority, tries and successful would change`);
    if (changed !== 0n && !sameGuid(e.typeGuid, typeGuid)) throw unsafe(`partition ${e.index} is not a slot (type ${e.typeGuid})`);
  });
  const slots = after.filter((e) => sameGuid(e.typeGuid, typeGuid));
  if (!allowUnbootable && !slots.some((e) => isBootable(e.attributes))) throw unsafe('no slot would be bootable (priority > 0 and successful or tries left)');
  if (running !== undefined) {
    const r = after.find((e) => e.index === running);
    if (!r) throw unsafe(`running slot ${running} is not a partition of this disk`);
    const bits = getSlotBits(r.attributes);
    if (!bits.successful || bits.priority === 0) throw unsafe(`running slot ${running} would stop being a fallback (it must keep successful=1 and priority > 0)`);
  }
}

/**
 * The entry a user names: a partition number ("4"), a label in any case ("USR-B", "usr-b") or a
 * unique GUID (any case). Labels that are equal but for case make the name ambiguous, as any
 * other name matching several entries. Throws FastPatchError('USAGE') when none or several match.
 */
export function findSlot(entries: readonly GptEntry[], name: string): GptEntry {
  const folded = name.toLowerCase();
  const matches = /^\d+$/.test(name)
    ? entries.filter((e) => e.index === Number(name))
    : entries.filter((e) => e.label.toLowerCase() === folded || sameGuid(e.uniqueGuid, name));
  if (matches.length === 0) {
    const labels = entries.map((e) => `${e.index} ${escapeText(e.label)}`).join(', ');
    throw new FastPatchError('USAGE', `no partition is named "${escapeText(name)}": name one by number, label (any case) or unique GUID${labels ? ` (this disk has ${labels})` : ''}`);
  }
  if (matches.length > 1) {
    const which = matches.map((e) => `${e.index} ${escapeText(e.label)}`).join(', ');
    throw new FastPatchError('USAGE', `"${escapeText(name)}" names ${matches.length} partitions (${which}; labels match in any case): name it by number or unique GUID`);
  }
  return matches[0]!;
}

/**
 * Rebuilds a bad or disagreeing copy of the GPT from the good one (the primary when it is valid,
 * as every reader prefers it), including a missing protective MBR, in the same crash-safe order.
 * With `moveBackup`, a backup that is not at the disk's last LBA (an image written to a larger
 * disk) is moved there: never done silently, since it changes the geometry every reader sees.
 * The repaired disk is checked in memory first (the planned writes over the sectors as they are,
 * through readGpt): if a problem would remain (an entry count no reader accepts, overlapping
 * partitions), nothing is written. Returns the problems found before, the sectors written, and the
 * table as read back after the repair (so a caller need not read it again).
 * Throws FastPatchError('GPT_CORRUPT') when neither copy is valid or a problem would remain.
 */
export async function repairGpt(path: string, options: DiskOptions & { moveBackup?: boolean } = {}): Promise<{ problems: string[]; written: number; after: GptReadResult }> {
  return editDisk(path, options, async (disk, read) => {
    const result = readGpt(read, disk.sectorSize, disk.sectors);
    if (!result.table) throw new FastPatchError('GPT_CORRUPT', `${path}: neither GPT copy is valid: nothing to repair from; if the disk never had a GPT (or its table was made for the other sector size: try --sector-size 512 or 4096), \`fastpatch gpt create ${path} --force\` makes a new one (it replaces what the disk holds)`);
    const table = options.moveBackup ? backupAtEnd(result.table, disk, path) : result.table;
    const regions = writeGptPlan(table, disk.sectorSize, disk.sectors);
    const remaining = readGpt(overlay(read, regions, disk.sectorSize), disk.sectorSize, disk.sectors).problems;
    if (remaining.length > 0) {
      const hint = /AlternateLBA|last LBA|backup header at/i.test(remaining[0]!.message) && !options.moveBackup ? ' (add --move-backup to move the backup to the end of the disk)' : '';
      throw new FastPatchError('GPT_CORRUPT', `${path}: repair cannot fix this: ${remaining[0]!.message}${hint}; nothing written`);
    }
    const plan = commitPlan(regions.filter((r): r is GptRegion => r.role !== 'pmbr'), disk.sectorSize, read);
    // The protective MBR last: no GPT reader needs it, the Linux kernel does.
    const pmbr = regions.find((r) => r.role === 'pmbr');
    if (pmbr && Buffer.compare(pmbr.bytes, read(pmbr.lba, pmbr.bytes.length / disk.sectorSize)) !== 0) plan.push([{ role: 'pmbr', lba: pmbr.lba, bytes: pmbr.bytes }]);
    const seen = regions.map((r) => read(r.lba, r.bytes.length / disk.sectorSize));
    await commit(disk, plan, regions, seen, read);
    const after = readGpt(read, disk.sectorSize, disk.sectors);
    if (after.problems.length > 0) {
      throw new FastPatchError('GPT_CORRUPT', `${path}: still wrong after repair: ${after.problems[0]!.message}`);
    }
    return { problems: result.problems.map((p) => `${p.severity} (${p.place}): ${p.message}`), written: plan.flat().length, after };
  });
}

/** The table with its backup copy at the disk's last LBA; refuses when partitions would be in the way. */
function backupAtEnd(table: GptTable, disk: Disk, path: string): GptTable {
  const n = entrySectors(table.entryCount, table.entrySize, disk.sectorSize);
  const backupHeaderLba = disk.sectors - 1;
  const backupEntriesLba = backupHeaderLba - n;
  if (table.lastUsableLba >= backupEntriesLba) {
    throw new FastPatchError('GPT_CORRUPT', `${path}: the table's usable area ends at LBA ${table.lastUsableLba}, past where the backup must go (LBA ${backupEntriesLba}): the disk is smaller than the table; nothing written`);
  }
  return { ...table, backupHeaderLba, backupEntriesLba };
}

/** A reader of the disk as it would be after writing `regions`. */
function overlay(read: SectorReader, regions: readonly { lba: number; bytes: Uint8Array }[], sectorSize: number): SectorReader {
  return (lba, count) => {
    const out = Uint8Array.from(read(lba, count));
    for (const r of regions) {
      const rCount = r.bytes.length / sectorSize;
      const from = Math.max(lba, r.lba);
      const to = Math.min(lba + out.length / sectorSize, r.lba + rCount);
      if (from < to) out.set(r.bytes.subarray((from - r.lba) * sectorSize, (to - r.lba) * sectorSize), (from - lba) * sectorSize);
    }
    return out;
  };
}

/**
 * Writes a new GPT with the Flatcar layout (layout.ts) onto `path`: a new image file of `size`
 * bytes, or an existing whole-disk block device (whose size is its own).
 *
 * An image file is always made new: created under an unguessable name beside `path`
 * (io/safe-files.ts), sized, given its table, checked, then renamed into place; so a symlink at
 * `path` is never written through, a failure leaves nothing behind, and `--force` on an existing
 * file gives a file of exactly the asked size (without `size`: the old file's size). Without
 * `force` an existing name is refused. A symlink at `path` is followed only to a block device.
 * Throws FastPatchError('USAGE' | 'IO').
 */
export async function createFlatcarDisk(path: string, options: { size?: number; sectorSize?: number; force?: boolean } = {}): Promise<GptEntry[]> {
  const link = await fsp.lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw ioError(`look at ${path}`, err);
  });
  const target = link?.isSymbolicLink() ? await fsp.stat(path).catch(() => undefined) : link;
  if (target?.isBlockDevice()) return createOnDevice(path, options);
  if (link?.isSymbolicLink()) {
    throw new FastPatchError('USAGE', `${path} is a symbolic link${target ? ' to a file' : ''}: a disk image is never written through one; give the image file's own path`);
  }
  if (link && !link.isFile()) throw new FastPatchError('USAGE', `${path} is neither a regular file nor a block device: give an image file or a whole-disk device`);
  if (link && !options.force) {
    const holds = await readDiskGpt(path, options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {}).then((r) => r.table !== undefined, () => false);
    throw new FastPatchError('USAGE', `${path} ${holds ? 'already holds a GPT' : 'exists'}: add --force to replace it with a new, empty disk image`);
  }
  const size = options.size ?? link?.size;
  if (size === undefined) throw new FastPatchError('USAGE', `${path} does not exist: give --size to create an image file, e.g. --size 8G`);
  checkDiskSize(size, options.size !== undefined ? `--size ${size} bytes` : `${path} holds ${size} bytes, which`);
  const sectorSize = options.sectorSize ?? 512;
  const temp = await createTempBeside(path, 0o644);
  let entries: GptEntry[];
  try {
    await temp.handle.truncate(size);
    const disk: Disk = { handle: temp.handle, path, sectorSize, sectors: Math.floor(size / sectorSize), isBlockDevice: false, writable: true };
    entries = await writeFlatcarTable(disk, sectorReader(disk));
  } catch (err) {
    await discardTemp(temp);
    throw err;
  }
  await commitTemp(temp, options.force ? {} : { noReplace: true });
  return entries;
}

/** `gpt create` on a whole-disk block device: the table written in place, under the disk's lock. */
async function createOnDevice(path: string, options: { size?: number; sectorSize?: number; force?: boolean }): Promise<GptEntry[]> {
  if (options.size !== undefined) throw new FastPatchError('USAGE', `${path} is a block device: its size is its own; drop --size`);
  if (!options.force) {
    const existing = await readDiskGpt(path, options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {}).catch(() => undefined);
    if (existing?.table) throw new FastPatchError('USAGE', `${path} already holds a GPT: add --force to replace it`);
  }
  return editDisk(path, options, async (disk, read) => {
    // The name was a block device when looked at; what was opened must be one too.
    if (!disk.isBlockDevice) throw new FastPatchError('USAGE', `${path} changed while being opened: it is no longer a block device; nothing written`);
    checkDiskSize(disk.sectors * disk.sectorSize, `${path} holds ${disk.sectors * disk.sectorSize} bytes, which`);
    return writeFlatcarTable(disk, read);
  });
}

/** Refuses (USAGE, naming the minimum) a disk too small for the flatcar layout. */
function checkDiskSize(bytes: number, what: string): void {
  if (bytes >= FLATCAR_MIN_DISK_BYTES) return;
  throw new FastPatchError('USAGE', `${what} is below the 32 MiB a flatcar layout needs: give --size 32M or more (USR slots of 1 GiB or more, for a real /usr image: --size 5G; Flatcar's own 2 GiB slots: --size 8G)`);
}

async function writeFlatcarTable(disk: Disk, read: SectorReader): Promise<GptEntry[]> {
  const table = flatcarLayout(disk.sectors * disk.sectorSize, disk.sectorSize);
  const regions = writeGptPlan(table, disk.sectorSize, disk.sectors);
  const seen = regions.map((r) => read(r.lba, r.bytes.length / disk.sectorSize));
  // A new table has no old state worth keeping crash-safe: one phase, every region.
  await commit(disk, [regions.map((r) => ({ role: r.role, lba: r.lba, bytes: r.bytes }))], regions, seen, read);
  const check = readGpt(read, disk.sectorSize, disk.sectors);
  if (check.problems.length > 0) throw new FastPatchError('IO', `${disk.path}: the new table reads back with a problem: ${check.problems[0]!.message}`);
  return check.table!.entries.filter(isUsed);
}
