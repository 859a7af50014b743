/**
 * Which A/B slot the system runs from. Updating the wrong one would overwrite the running system
 * or its fallback, so the evidence is taken in order of strength:
 *
 *  1. the slot the caller names (`--running`);
 *  2. on a block device whose partitions the kernel knows, the slot partition that is mounted or
 *     held (Flatcar mounts /usr through dm-verity, which holds the partition): what the kernel
 *     says is in use is what runs;
 *  3. otherwise (an image file) the bootloader's choice (the GRUB model), with one correction: a
 *     slot it would pick that is still on trial (successful = 0, tries > 0) has not been booted yet
 *     (booting it uses a try), so the system runs from the other, successful slot; this is the
 *     state `update` itself leaves until the next reboot.
 */
import { stat } from 'node:fs/promises';
import { FastPatchError } from '../errors.js';
import { getSlotBits, sameGuid } from '../gpt/attributes.js';
import { grubNext } from '../gpt/boot-model.js';
import type { GptEntry } from '../gpt/table.js';
import { findSlot } from '../disk/transaction.js';
import { majorMinor } from '../io/device.js';
import { rangeUsers } from '../io/mounts.js';

export interface RunningSlot {
  slot: GptEntry;
  how: 'named' | 'in use' | 'bootloader';
}

/** How the running slot was found, in words, for messages. */
export const RUNNING_HOW: Record<RunningSlot['how'], string> = { named: 'as named', 'in use': 'its partition is in use', bootloader: "the bootloader's choice" };

export async function findRunningSlot(disk: string, entries: readonly GptEntry[], slots: readonly GptEntry[], typeGuid: string, sectorSize: number, named?: string): Promise<RunningSlot> {
  if (named !== undefined) {
    const slot = findSlot(entries, named);
    if (!sameGuid(slot.typeGuid, typeGuid)) throw new FastPatchError('USAGE', `--running ${named}: partition ${slot.index} is not a slot (type ${slot.typeGuid})`);
    return { slot, how: 'named' };
  }
  const stats = await stat(disk).catch(() => undefined);
  if (stats?.isBlockDevice()) {
    const inUse: GptEntry[] = [];
    for (const s of slots) {
      const users = await rangeUsers(majorMinor(stats.rdev), s.firstLba * sectorSize, (s.lastLba - s.firstLba + 1) * sectorSize);
      if (users.some((u) => u.startsWith('partition'))) inUse.push(s);
    }
    if (inUse.length === 1) return { slot: inUse[0]!, how: 'in use' };
    if (inUse.length > 1) throw new FastPatchError('USAGE', `both slots of ${disk} are in use: cannot tell which one runs; name it (--running)`);
  }
  const next = grubNext(entries, typeGuid);
  if (!next.bootable) throw new FastPatchError('USAGE', `no slot of ${disk} is bootable: cannot tell which one runs; name it (--running)`);
  const picked = slots.find((s) => s.index === next.index)!;
  const bits = getSlotBits(picked.attributes);
  if (!bits.successful && bits.tries > 0) {
    const other = slots.find((s) => s.index !== picked.index)!;
    if (getSlotBits(other.attributes).successful) return { slot: other, how: 'bootloader' };
  }
  return { slot: picked, how: 'bootloader' };
}
