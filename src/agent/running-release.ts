/**
 * The release the device runs: the running slot (as `update` finds it: named, in use, or the
 * bootloader's choice) and its release in the slot status record. What `check` reports as the
 * app's version, and what the update service compares with its channel's release.
 */
import { FLATCAR_USR_TYPE } from '../gpt/index.js';
import { findRunningSlot } from '../update/running.js';
import { twoSlots } from '../update/slot-policy.js';
import { readStatus, statusPathFor } from '../update/status.js';

export interface RunningRelease {
  /** The running slot's label, else its partition number. */
  slot: string;
  /** Its release, or undefined when the record has none (the device then reports 0.0.0, as update_engine would). */
  version: string | undefined;
  statusPath: string;
  /** Why the record was not used, when it exists but is not valid. */
  problem?: string;
}

/** Finds the running slot of `disk` and its recorded release. Throws what reading the GPT throws. */
export async function runningRelease(disk: string, o: { statusPath?: string; running?: string; typeGuid?: string } = {}): Promise<RunningRelease> {
  const typeGuid = o.typeGuid ?? FLATCAR_USR_TYPE;
  const { read, entries, slots } = await twoSlots(disk, 'check', { typeGuid });
  const { slot } = await findRunningSlot(disk, entries, slots, typeGuid, read.sectorSize, o.running);
  const statusPath = o.statusPath ?? (await statusPathFor(disk));
  const { status, problem } = await readStatus(statusPath);
  return { slot: slot.label || String(slot.index), version: status.slots[slot.uniqueGuid.toUpperCase()]?.version, statusPath, ...(problem ? { problem } : {}) };
}
