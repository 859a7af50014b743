/**
 * The first install (`fastpatch apply --slot`): a release written into one slot of a whole GPT
 * disk that nobody runs yet, verified as `apply` verifies it, and noted in the slot status record
 * as `update` notes what it writes, so that the disk's first update knows the release it runs
 * (its downgrade check refuses an unknown release by default).
 *
 * Which slots may be written is disk/slot-target.ts's rule (slotForInstall); the slot bits are not
 * changed (on a new disk USR-A already boots next).
 */
import { applyPayload, type ApplyOptions, type ApplyResult } from '../apply/applier.js';
import { FastPatchError } from '../errors.js';
import { slotForInstall } from '../disk/slot-target.js';
import type { PayloadInput } from '../io/payload-source.js';
import { escapeText } from '../text.js';
import { probeStatusWritable, recordSlotImage, statusPathFor } from './status.js';

export interface InstallOptions extends Omit<ApplyOptions, 'target' | 'targetRange' | 'source' | 'sourceRange' | 'checkSource'> {
  /** Whole disk holding the slots: an image file or a block device. */
  disk: string;
  /** The slot to fill: number, label in any case, or unique GUID. */
  slot: string;
  /** Slot status record; default as update's (statusPathFor). */
  statusPath?: string;
  typeGuid?: string;
  sectorSize?: number;
}

export interface InstallResult {
  apply: ApplyResult;
  slot: { index: number; label: string; written: string };
  /** The partition the GRUB model boots next (slot bits are not changed), or null. */
  bootsNext: { index: number; label: string } | null;
  /** Where the release was recorded. */
  statusPath: string;
}

/**
 * Writes a full payload into a slot of `disk`. Refuses (FastPatchError) before anything is
 * written: a slot that may be running (slotForInstall), a status record that cannot be written,
 * anything applyPayload refuses; a slot too small names the slot (TARGET_TOO_SMALL).
 */
export async function installSlot(input: PayloadInput, options: InstallOptions): Promise<InstallResult> {
  const { disk, slot: name, statusPath: chosen, typeGuid, sectorSize, ...applyOptions } = options;
  const slot = await slotForInstall(disk, name, { ...(typeGuid !== undefined ? { typeGuid } : {}), ...(sectorSize !== undefined ? { sectorSize } : {}) });
  const statusPath = chosen ?? (await statusPathFor(disk));
  await probeStatusWritable(statusPath);
  const slotName = escapeText(slot.slot.label) || `partition ${slot.slot.index}`;
  const apply = await applyPayload(input, { ...applyOptions, target: slot.path, ...(slot.range ? { targetRange: slot.range } : {}) }).catch((err: unknown) => {
    if (!(err instanceof FastPatchError) || err.code !== 'TARGET_TOO_SMALL') throw err;
    throw new FastPatchError('TARGET_TOO_SMALL', `slot ${slotName} (${slot.slotRange.length} bytes) is too small for this image: ${err.message}; a larger disk has larger slots (\`fastpatch gpt create DISK --size 8G\`)`, { cause: err });
  });
  await recordSlotImage(disk, slot.slot, apply, statusPath);
  return {
    apply,
    slot: { index: slot.slot.index, label: slot.slot.label, written: slot.description },
    bootsNext: slot.bootsNext ? { index: slot.bootsNext.index, label: slot.bootsNext.label } : null,
    statusPath,
  };
}
