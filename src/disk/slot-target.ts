/**
 * A slot of a whole GPT disk as the place to write an image (`fastpatch apply --slot`: the first
 * release into USR-A of a new disk), and where its bytes are reached.
 *
 * A slot some bootloader could boot (priority > 0, and successful or tries left: the slot that
 * boots next and its fallback) may be the running system, so it is written only on a fresh disk:
 * nothing of the disk is in use (no partition mounted or held) and the slot holds nothing yet (all
 * zeros: never written). A slot whose partition is in use is never written. Every other change of
 * a running disk's slots is `fastpatch update`'s, which also makes the new slot boot next.
 */
import { open, stat } from 'node:fs/promises';
import { FastPatchError, ioError } from '../errors.js';
import { majorMinor } from '../io/device.js';
import { diskPartitions, rangeUsers } from '../io/mounts.js';
import { escapeText } from '../text.js';
import { FLATCAR_USR_TYPE, getSlotBits, isBootable, sameGuid } from '../gpt/attributes.js';
import { grubNext } from '../gpt/boot-model.js';
import type { GptEntry } from '../gpt/table.js';
import { findSlot, readDiskGpt, usableEntries } from './transaction.js';

/** Bytes [offset, offset + length) of a disk. */
export interface SlotRange {
  offset: number;
  length: number;
}

/** Where a slot's bytes are reached: `path` itself (a partition device), or `range` of it (the whole disk). */
export interface SlotDevice {
  path: string;
  range?: SlotRange;
  /** "/dev/sda3", or "disk.img bytes 1048576+15728640", for messages. */
  description: string;
}

export interface SlotTarget extends SlotDevice {
  slot: GptEntry;
  /** The slot's byte range within the whole disk. */
  slotRange: SlotRange;
  /** A bootloader could boot the slot (it was checked to be empty and the disk unused). */
  bootable: boolean;
  /** The partition the GRUB model boots next, if any. */
  bootsNext: GptEntry | undefined;
}

/**
 * Where a slot's bytes are reached: the kernel's partition device when one covers exactly the
 * slot's byte range (opened exclusively by the applier, so the kernel itself refuses a mounted
 * slot), else the range inside the whole disk (an image file, a loop device without partitions).
 */
export async function slotDevice(disk: string, range: SlotRange): Promise<SlotDevice> {
  const stats = await stat(disk).catch(() => undefined);
  if (stats?.isBlockDevice()) {
    for (const part of await diskPartitions(majorMinor(stats.rdev))) {
      if (part.offset !== range.offset || part.length !== range.length) continue;
      const node = `/dev/${part.name}`;
      const nodeStats = await stat(node).catch(() => undefined);
      if (nodeStats?.isBlockDevice() && majorMinor(nodeStats.rdev) === part.dev) return { path: node, description: node };
    }
  }
  return { path: disk, range, description: `${disk} bytes ${range.offset}+${range.length}` };
}

/**
 * The slot `name` (number, label in any case, unique GUID) of the whole disk `disk` as a place to
 * write an image into, after the checks above. Throws FastPatchError('USAGE') for a missing disk,
 * a partition that is not a slot, or a slot that may be the running system; 'GPT_CORRUPT' for a
 * disk without a valid GPT; 'IO'.
 */
export async function slotForInstall(disk: string, name: string, options: { typeGuid?: string; sectorSize?: number } = {}): Promise<SlotTarget> {
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  const stats = await stat(disk).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new FastPatchError('USAGE', `${disk} does not exist: with --slot the target is a whole GPT disk; make one first (\`fastpatch gpt create ${disk} --size 8G\`)`);
    throw ioError(`look at ${disk}`, err);
  });
  if (!stats.isFile() && !stats.isBlockDevice()) throw new FastPatchError('USAGE', `${disk} is neither a disk image file nor a block device`);
  const read = await readDiskGpt(disk, options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {});
  if (!read.table) throw new FastPatchError('GPT_CORRUPT', `${disk} holds no valid GPT: with --slot the target is a whole GPT disk; make one with \`fastpatch gpt create ${disk}\``);
  const entries = usableEntries(read, disk);
  const slot = findSlot(entries, name);
  const label = escapeText(slot.label) || `partition ${slot.index}`;
  if (!sameGuid(slot.typeGuid, typeGuid)) {
    const slots = entries.filter((e) => sameGuid(e.typeGuid, typeGuid)).map((e) => escapeText(e.label) || String(e.index));
    throw new FastPatchError('USAGE', `--slot ${escapeText(name)}: partition ${slot.index} (${label}) is not an A/B slot (type ${slot.typeGuid}); the slots of ${disk} are ${slots.join(' and ') || 'none'}`);
  }
  const slotRange = { offset: slot.firstLba * read.sectorSize, length: (slot.lastLba - slot.firstLba + 1) * read.sectorSize };
  const next = grubNext(entries, typeGuid);
  const bootsNext = next.bootable ? entries.find((e) => e.index === next.index) : undefined;
  const users = stats.isBlockDevice() ? await rangeUsers(majorMinor(stats.rdev), slotRange.offset, slotRange.length) : [];
  if (users.length > 0) throw new FastPatchError('USAGE', `slot ${label} of ${disk} is in use (${users.join('; ')}): it is the running system; refusing to write it`);
  const bootable = isBootable(slot.attributes);
  if (bootable) {
    const role = bootsNext?.index === slot.index ? 'boots next' : getSlotBits(slot.attributes).successful ? 'is a good fallback' : 'is set to boot on trial';
    const diskUsers = stats.isBlockDevice() ? await rangeUsers(majorMinor(stats.rdev), 0, read.diskSectors * read.sectorSize) : [];
    if (diskUsers.length > 0) {
      throw new FastPatchError('USAGE', `slot ${label} of ${disk} ${role} and the disk is in use (${diskUsers.join('; ')}): it may be the running system; a first install writes a disk nobody boots; to update a running disk: \`fastpatch update PAYLOAD --disk ${disk}\``);
    }
    if (!(await isEmpty(disk, slotRange))) {
      throw new FastPatchError('USAGE', `slot ${label} of ${disk} ${role} and already holds data: it may be a running system; a first install writes only an empty slot; to update: \`fastpatch update PAYLOAD --disk ${disk}\`; to start this disk over: \`fastpatch gpt create ${disk} --force\`${stats.isBlockDevice() ? ` then zero the slot (blkdiscard -z -o ${slotRange.offset} -l ${slotRange.length} ${disk})` : ''}`);
    }
  }
  return { ...(await slotDevice(disk, slotRange)), slot, slotRange, bootable, bootsNext };
}

/** True when bytes `range` of `path` are all zero (read in 4 MiB pieces, stopping at the first that is not). */
async function isEmpty(path: string, range: SlotRange): Promise<boolean> {
  const handle = await open(path, 'r').catch((err) => { throw ioError(`open ${path}`, err); });
  try {
    const buffer = Buffer.alloc(Math.min(4 * 1024 * 1024, range.length));
    const zeros = Buffer.alloc(buffer.length);
    for (let done = 0; done < range.length;) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, range.length - done), range.offset + done);
      if (bytesRead === 0) return true; // past the end of the file: reads as zeros
      if (buffer.compare(zeros, 0, bytesRead, 0, bytesRead) !== 0) return false;
      done += bytesRead;
    }
    return true;
  } catch (err) {
    throw err instanceof FastPatchError ? err : ioError(`read ${path}`, err);
  } finally {
    await handle.close();
  }
}
