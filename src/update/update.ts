/**
 * The device's whole update in one call (`fastpatch update`): find the A/B slots on the disk, write
 * the payload into the passive slot, verified as `apply` verifies it, then make the passive slot
 * boot next, once, with the running slot as its fallback.
 *
 *  - The running slot is the one the bootloader would boot now (the GRUB model, without its tries
 *    update), unless the caller names it; the passive slot is the other one. Updating the slot
 *    that boots next is refused: that is the running system.
 *  - A delta reads the running slot's partition as its source; the payload is written into the
 *    passive slot, never past it. On a block device whose partitions the kernel knows, that is the
 *    partition device (/dev/sda4), opened exclusively, so a mounted passive slot is refused by the
 *    kernel itself; otherwise (an image file, a loop device without partitions) it is the slot's
 *    byte range of the whole disk.
 *  - Only after the whole image is written, fsynced and its hash checked does the GPT change.
 */
import { stat } from 'node:fs/promises';
import { applyPayload, type ApplyResult } from '../apply/applier.js';
import { majorMinor } from '../io/device.js';
import { diskPartitions } from '../io/mounts.js';
import type { PayloadInput } from '../io/payload-source.js';
import { alreadyInstalled } from './installed.js';
import { findRunningSlot, RUNNING_HOW, type RunningSlot } from './running.js';
import { defaultStatusPath, readStatus, writeStatus } from './status.js';
import { FastPatchError } from '../errors.js';
import { FLATCAR_USR_TYPE, getSlotBits, sameGuid } from '../gpt/attributes.js';
import { grubNext, type BootDecision } from '../gpt/boot-model.js';
import { setNext } from '../gpt/prioritize.js';
import type { GptEntry } from '../gpt/table.js';
import { changeSlots, checkInvariants, findSlot, readDiskGpt, repairGpt, usableEntries } from '../gpt/transaction.js';
import type { PrivateKey, PublicKey } from '../sign/keys.js';
import type { CoreBuild } from '../wasm/core.js';

export interface UpdateOptions {
  /** Whole disk holding the slots: an image file or a block device. */
  disk: string;
  trustedKeys: readonly (PublicKey | PrivateKey)[];
  /** The slot running now (number, label or unique GUID); default: the one GRUB would boot. */
  running?: string;
  /** Slot partition type (default: CoreOS/Flatcar /usr). */
  typeGuid?: string;
  /** Boot attempts of the new slot before the bootloader falls back (default 1, as Flatcar). */
  tries?: number;
  sectorSize?: number;
  /**
   * Finish an interrupted update (ApplyOptions.resume). A GPT whose two copies disagree, as a cut
   * during the flip leaves them, is repaired first (repairGpt), the result saying so.
   */
  resume?: boolean;
  /** Slot status record (status.ts); default /var/lib/fastpatch/status.json, or DISK.status.json for an image file. */
  statusPath?: string;
  /** Install a release older than the running slot's. */
  allowDowngrade?: boolean;
  build?: CoreBuild;
  onProgress?: (p: { imageBytesDone: number; targetSize: number }) => void;
}

export interface UpdateResult {
  apply: ApplyResult;
  /** `how`: named by the caller, the slot partition in use, or the bootloader's choice (running.ts). */
  running: { index: number; label: string; how: RunningSlot['how'] };
  /** `written`: the device or byte range the image went to. */
  updated: { index: number; label: string; written: string };
  /** What the bootloader will do on the next boot (GRUB model, not written). */
  nextBoot: BootDecision;
  /** The running slot's release as the status record has it (undefined: unknown, no downgrade check). */
  runningVersion: string | undefined;
  /** Where the slot status was recorded, and a problem reading it, if any. */
  status: { path: string; problem?: string };
  /** With `resume`: the GPT problems an interrupted flip had left, repaired before going on. */
  gptRepaired?: string[];
}

export async function updateDisk(input: PayloadInput, options: UpdateOptions): Promise<UpdateResult> {
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  const diskOptions = options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {};
  let read = await readDiskGpt(options.disk, diskOptions);
  let gptRepaired: string[] | undefined;
  if (options.resume && read.table && read.problems.length > 0) {
    // A cut during the flip leaves the two copies disagreeing, or one half written (docs/GPT.md,
    // "Transactions"). Finishing the update starts as `fastpatch gpt repair` would: the valid
    // primary wins, else the backup, so the slots are as before the flip or as after it, and the
    // rest of resume goes on from there. A table repair cannot fix stops here, untouched.
    gptRepaired = (await repairGpt(options.disk, diskOptions)).problems;
    read = await readDiskGpt(options.disk, diskOptions);
  }
  const entries = usableEntries(read, options.disk);
  const slots = entries.filter((e) => sameGuid(e.typeGuid, typeGuid));
  if (slots.length !== 2) throw new FastPatchError('USAGE', `${options.disk} has ${slots.length} slot partitions of type ${typeGuid}; an A/B update needs exactly 2`);
  const { slot: running, how } = await findRunningSlot(options.disk, entries, slots, typeGuid, read.sectorSize, options.running);
  const passive = slots.find((s) => s.index !== running.index)!;
  const booting = grubNext(entries, typeGuid);
  const range = (e: GptEntry) => ({ offset: e.firstLba * read.sectorSize, length: (e.lastLba - e.firstLba + 1) * read.sectorSize });
  const statusPath = options.statusPath ?? defaultStatusPath(options.disk, (await stat(options.disk)).isBlockDevice());
  const { status, problem } = await readStatus(statusPath);
  const runningVersion = status.slots[running.uniqueGuid.toUpperCase()]?.version;
  const record = async (apply: ApplyResult, written: string, nextBoot: BootDecision): Promise<UpdateResult> => {
    // Recorded after the flip: a record that says more than the disk does is worse than none.
    status.slots[passive.uniqueGuid.toUpperCase()] = {
      version: apply.version, imageHash: apply.targetHash, imageSize: apply.targetSize, label: passive.label, installed: new Date().toISOString(),
    };
    await writeStatus(statusPath, status);
    return {
      runningVersion,
      status: { path: statusPath, ...(problem !== undefined ? { problem } : {}) },
      ...(gptRepaired ? { gptRepaired } : {}),
      apply,
      running: { index: running.index, label: running.label, how },
      updated: { index: passive.index, label: passive.label, written },
      nextBoot,
    };
  };
  if (booting.bootable && booting.index === passive.index) {
    // Already set to boot next: the previous update got as far as the flip. With --resume, finish
    // it if the slot holds exactly this payload's image; never write a slot that boots next.
    const done = options.resume ? await alreadyInstalled(input, options, range(passive)) : undefined;
    if (done) return record(done, `${options.disk} (already written)`, booting);
    const passiveName = passive.label || String(passive.index);
    const runningName = `${running.label || running.index} (${RUNNING_HOW[how]})`;
    throw new FastPatchError('USAGE', getSlotBits(passive.attributes).successful
      ? `slot ${passiveName} boots next and is marked good: it is the running system or its fallback, not the passive slot (running slot taken to be ${runningName}; name it with --running); refusing to overwrite it`
      : `slot ${passiveName} is already set to boot next${options.resume ? ' with another image' : ' (an update awaits a reboot)'}: reboot into it, or \`fastpatch gpt rollback\` first${options.resume ? '' : ', or --resume to finish an interrupted update of the same payload'}; refusing to overwrite it`);
  }
  // The slot change must be allowed before anything is written: the running slot has to be a
  // successful fallback (a slot that was set to boot next but never marked good is not).
  const flip = (e: GptEntry[]) => setNext(e, passive.index, { typeGuid, ...(options.tries !== undefined ? { tries: options.tries } : {}) }) as GptEntry[];
  checkInvariants(entries, flip(entries.map((e) => ({ ...e }))), typeGuid, running.index, false);
  const targetSlot = await slotDevice(options.disk, range(passive));
  const sourceSlot = await slotDevice(options.disk, range(running));
  const apply = await applyPayload(input, {
    trustedKeys: options.trustedKeys,
    resume: options.resume === true,
    ...(runningVersion !== undefined ? { sourceVersion: runningVersion } : {}),
    ...(runningVersion !== undefined && !options.allowDowngrade ? { minimumVersion: runningVersion } : {}),
    target: targetSlot.path,
    ...(targetSlot.range ? { targetRange: targetSlot.range } : {}),
    source: sourceSlot.path,
    ...(sourceSlot.range ? { sourceRange: sourceSlot.range } : {}),
    ...(options.build ? { build: options.build } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const changed = await changeSlots(options.disk, flip, {
    ...diskOptions,
    typeGuid,
    running: running.index,
  });
  return record(apply, targetSlot.description, grubNext(changed.after, typeGuid));
}

interface SlotDevice {
  path: string;
  /** The slot's bytes within `path`, when `path` is the whole disk. */
  range?: { offset: number; length: number };
  description: string;
}

/**
 * Where a slot's bytes are reached: the kernel's partition device when one covers exactly the
 * slot's byte range, else the range inside the whole disk.
 */
async function slotDevice(disk: string, range: { offset: number; length: number }): Promise<SlotDevice> {
  const stats = await stat(disk).catch(() => undefined);
  if (stats?.isBlockDevice()) {
    for (const part of await diskPartitions(majorMinor(stats.rdev))) {
      if (part.offset !== range.offset || part.length !== range.length) continue;
      const node = `/dev/${part.name}`;
      const nodeStats = await stat(node).catch(() => undefined);
      if (nodeStats?.isBlockDevice() && majorMinor(nodeStats.rdev) === part.dev) {
        return { path: node, description: node };
      }
    }
  }
  return { path: disk, range, description: `${disk} bytes ${range.offset}+${range.length}` };
}
