/**
 * The device's whole update in one call (`fastpatch update`): find the A/B slots on the disk, write
 * the payload into the passive slot, verified as `apply` verifies it, then make the passive slot
 * boot next, once, with the running slot as its fallback.
 *
 *  - The running slot is the one the bootloader would boot now (the GRUB model, without its tries
 *    update), unless the caller names it; the passive slot is the other one. Updating the slot
 *    that boots next is refused: that is the running system.
 *  - A delta reads the running slot's partition as its source; the payload is written into the
 *    passive slot's byte range of the disk (an image file or a whole-disk device), never past it.
 *  - Only after the whole image is written, fsynced and its hash checked does the GPT change.
 */
import { applyPayload, type ApplyResult } from '../apply/applier.js';
import { FastPatchError } from '../errors.js';
import { FLATCAR_USR_TYPE, sameGuid } from '../gpt/attributes.js';
import { grubNext, type BootDecision } from '../gpt/boot-model.js';
import { setNext } from '../gpt/prioritize.js';
import type { GptEntry } from '../gpt/table.js';
import { changeSlots, checkInvariants, findSlot, readDiskGpt, usableEntries } from '../gpt/transaction.js';
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
  build?: CoreBuild;
  onProgress?: (p: { imageBytesDone: number; targetSize: number }) => void;
}

export interface UpdateResult {
  apply: ApplyResult;
  running: { index: number; label: string };
  updated: { index: number; label: string };
  /** What the bootloader will do on the next boot (GRUB model, not written). */
  nextBoot: BootDecision;
}

export async function updateDisk(chunks: AsyncIterable<Uint8Array>, options: UpdateOptions): Promise<UpdateResult> {
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  const diskOptions = options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {};
  const read = await readDiskGpt(options.disk, diskOptions);
  const entries = usableEntries(read, options.disk);
  const slots = entries.filter((e) => sameGuid(e.typeGuid, typeGuid));
  if (slots.length !== 2) throw new FastPatchError('USAGE', `${options.disk} has ${slots.length} slot partitions of type ${typeGuid}; an A/B update needs exactly 2`);
  const booting = grubNext(entries, typeGuid);
  const running = options.running !== undefined ? findSlot(entries, options.running) : booting.bootable ? slots.find((s) => s.index === booting.index) : undefined;
  if (!running || !sameGuid(running.typeGuid, typeGuid)) throw new FastPatchError('USAGE', `cannot tell which slot of ${options.disk} is running: name it (--running)`);
  const passive = slots.find((s) => s.index !== running.index)!;
  if (booting.bootable && booting.index === passive.index) {
    throw new FastPatchError('USAGE', `slot ${passive.label || passive.index} boots next: it is the running system or about to be; refusing to overwrite it`);
  }
  // The slot change must be allowed before anything is written: the running slot has to be a
  // successful fallback (a slot that was set to boot next but never marked good is not).
  const flip = (e: GptEntry[]) => setNext(e, passive.index, { typeGuid, ...(options.tries !== undefined ? { tries: options.tries } : {}) }) as GptEntry[];
  checkInvariants(entries, flip(entries.map((e) => ({ ...e }))), typeGuid, running.index, false);
  const range = (e: GptEntry) => ({ offset: e.firstLba * read.sectorSize, length: (e.lastLba - e.firstLba + 1) * read.sectorSize });
  const apply = await applyPayload(chunks, {
    trustedKeys: options.trustedKeys,
    target: options.disk,
    targetRange: range(passive),
    source: options.disk,
    sourceRange: range(running),
    ...(options.build ? { build: options.build } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const changed = await changeSlots(options.disk, flip, {
    ...diskOptions,
    typeGuid,
    running: running.index,
  });
  return {
    apply,
    running: { index: running.index, label: running.label },
    updated: { index: passive.index, label: passive.label },
    nextBoot: grubNext(changed.after, typeGuid),
  };
}
