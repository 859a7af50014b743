/**
 * The device's slot decisions after an update: which slot to mark good when none is named, and
 * where a rollback goes. `fastpatch gpt mark-good` and `fastpatch gpt rollback` are these plus their
 * output; a program running the device's update itself calls them the same way.
 *
 *  - Marking good without naming the slot marks the running one (update/running.ts: the slot
 *    partition the kernel has in use, else the bootloader's choice). On an image file where a slot
 *    has used its last try, nobody can tell whether it booted or the bootloader fell back: the slot
 *    must be named. Marking the running slot good while another waits for its trial boot would
 *    cancel that update without a word: refused, unless the slot is named.
 *  - A rollback makes the slot that is not running boot next, if it has booted successfully before
 *    (else nothing might be left bootable). It is defined by the running slot, so a second rollback
 *    finds the same slot already next and writes nothing; an image file nobody runs has no running
 *    slot but the bootloader's choice, which a rollback changes: it must be named.
 */
import { changeSlots, readDiskGpt, usableEntries, type SlotChangeResult } from '../disk/transaction.js';
import { FastPatchError } from '../errors.js';
import { CHROMEOS_KERNEL_TYPE, FLATCAR_USR_TYPE, getSlotBits } from '../gpt/attributes.js';
import { grubNext, vbootNext, type BootDecision } from '../gpt/boot-model.js';
import type { GptEntry } from '../gpt/entries.js';
import { prioritize } from '../gpt/prioritize.js';
import type { GptReadResult } from '../gpt/table.js';
import { escapeText } from '../text.js';
import { RUNNING_HOW, findRunningSlot, type RunningSlot } from './running.js';

export interface SlotPolicyOptions {
  /** Slot partition type (default: CoreOS/Flatcar /usr; the ChromeOS kernel type uses vboot's model). */
  typeGuid?: string;
  sectorSize?: number;
}

/** A partition as users name it, escaped (labels come from the disk: any bytes). */
export const slotName = (e: GptEntry) => (e.label ? escapeText(e.label) : `partition ${e.index}`);

/** What boots next by the model of the slot type's bootloader (GRUB for /usr, vboot for ChromeOS kernels). */
export function nextBoot<E extends GptEntry>(entries: readonly E[], typeGuid: string = FLATCAR_USR_TYPE): BootDecision<E> {
  return typeGuid === CHROMEOS_KERNEL_TYPE ? vbootNext(entries, { typeGuids: [typeGuid] }) : grubNext(entries, typeGuid);
}

/** The disk's used entries and its slots of the slot type, refusing anything but two slots. */
export async function twoSlots(disk: string, what: string, o: SlotPolicyOptions = {}): Promise<{ read: GptReadResult; entries: GptEntry[]; slots: GptEntry[] }> {
  const typeGuid = o.typeGuid ?? FLATCAR_USR_TYPE;
  const read = await readDiskGpt(disk, o.sectorSize !== undefined ? { sectorSize: o.sectorSize } : {});
  const entries = usableEntries(read, disk);
  const slots = entries.filter((e) => e.typeGuid === typeGuid);
  if (slots.length !== 2) throw new FastPatchError('USAGE', `${what} needs exactly two slots of the slot type (--type), ${disk} has ${slots.length}`);
  return { read, entries, slots };
}

/**
 * The slot `mark-good` marks when none is named: the running one, and how it was found (words for
 * a report). Throws FastPatchError('USAGE') where that cannot be told or would cancel an update.
 */
export async function slotToMarkGood(disk: string, o: SlotPolicyOptions = {}): Promise<{ slot: GptEntry; how: string }> {
  const typeGuid = o.typeGuid ?? FLATCAR_USR_TYPE;
  const { read, entries, slots } = await twoSlots(disk, 'mark-good without --slot', o);
  const running = await findRunningSlot(disk, entries, slots, typeGuid, read.sectorSize).catch((err: unknown) => {
    throw err instanceof FastPatchError ? new FastPatchError(err.code, err.message.replace('(--running)', '(--slot)')) : err;
  });
  if (running.how === 'bootloader') {
    const spent = slots.find((s) => {
      const b = getSlotBits(s.attributes);
      return b.priority > 0 && b.tries === 0 && !b.successful;
    });
    if (spent) {
      throw new FastPatchError('USAGE', `${disk}: cannot tell whether ${slotName(spent)} booted (it used its last try) or the bootloader fell back to ${slotName(running.slot)}: name the slot that runs (--slot ${slotName(spent)} or --slot ${slotName(running.slot)})`);
    }
  }
  const next = nextBoot(entries.map((e) => ({ ...e })), typeGuid);
  const pending = next.bootable && next.index !== running.slot.index ? slots.find((s) => s.index === next.index) : undefined;
  if (pending && !getSlotBits(pending.attributes).successful) {
    throw new FastPatchError('USAGE', `${slotName(pending)} is set to boot next on trial (an update awaits a reboot): marking the running ${slotName(running.slot)} good would cancel it; reboot into ${slotName(pending)} first, or name the slot (--slot ${slotName(running.slot)}) to cancel the update`);
  }
  return { slot: running.slot, how: `the running slot: ${RUNNING_HOW[running.how]}` };
}

/**
 * Rolls back: the slot that is not running (`running` names it, else it is found) boots next.
 * Throws FastPatchError('USAGE') when the running slot cannot be told, ('GPT_UNSAFE') when the
 * other slot never booted successfully.
 */
export async function rollbackSlots(disk: string, o: SlotPolicyOptions & { running?: string } = {}): Promise<{ running: RunningSlot; other: GptEntry; result: SlotChangeResult }> {
  const typeGuid = o.typeGuid ?? FLATCAR_USR_TYPE;
  const { read, entries, slots } = await twoSlots(disk, 'rollback', o);
  const running = await findRunningSlot(disk, entries, slots, typeGuid, read.sectorSize, o.running);
  if (running.how === 'bootloader') {
    throw new FastPatchError('USAGE', `cannot tell which slot ${disk} runs from (an image file, or no slot partition in use): name it (--running ${slotName(running.slot)} or --running ${slotName(slots.find((s) => s.index !== running.slot.index)!)}); rollback makes the other slot boot next`);
  }
  const other = slots.find((s) => s.index !== running.slot.index)!;
  if (!getSlotBits(other.attributes).successful) {
    const next = nextBoot(entries.map((e) => ({ ...e })), typeGuid);
    const pending = next.bootable && next.index === other.index;
    throw new FastPatchError('GPT_UNSAFE', `partition ${other.index} (${slotName(other)}) has never booted successfully: rolling back to it could leave nothing bootable${pending ? `; it is set to boot next on trial: to keep booting ${slotName(running.slot)} instead, \`fastpatch gpt mark-good ${disk} --slot ${slotName(running.slot)}\`` : ''}`);
  }
  const result = await changeSlots(disk, (e) => prioritize(e, other.index, { typeGuid }), { ...(o.sectorSize !== undefined ? { sectorSize: o.sectorSize } : {}), typeGuid });
  return { running, other, result };
}
