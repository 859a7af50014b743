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
import { applyPayload, type ApplyResult } from '../apply/applier.js';
import { compareVersions } from '../format/version.js';
import type { PayloadInput } from '../io/payload-source.js';
import { escapeText } from '../text.js';
import { DEFAULT_UPDATE_CONFIG, UNKNOWN_RELEASE_POLICIES, type UnknownReleasePolicy } from './config.js';
import { alreadyInstalled } from './installed.js';
import { findRunningSlot, RUNNING_HOW, type RunningSlot } from './running.js';
import { probeStatusWritable, readStatus, slotRecordOf, statusPathFor, writeStatus, type SlotStatus, type StatusState } from './status.js';
import { FastPatchError } from '../errors.js';
import { FLATCAR_USR_TYPE, MAX_TRIES, getSlotBits, sameGuid } from '../gpt/attributes.js';
import { grubNext, type BootDecision } from '../gpt/boot-model.js';
import { setNext } from '../gpt/prioritize.js';
import { slotDevice } from '../disk/slot-target.js';
import type { GptEntry } from '../gpt/table.js';
import { changeSlots, checkInvariants, readDiskGpt, repairGpt, usableEntries } from '../disk/transaction.js';
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
  /** Boot attempts of the new slot before the bootloader falls back: 1..15 (default 1, as Flatcar). RangeError otherwise. */
  tries?: number;
  sectorSize?: number;
  /**
   * Finish an interrupted update (ApplyOptions.resume). A GPT whose two copies disagree, as a cut
   * during the flip leaves them, is repaired first (repairGpt), the result saying so.
   */
  resume?: boolean;
  /**
   * Slot status record (status.ts). Default (statusPathFor): /var/lib/fastpatch/status.json for a
   * block device; REALPATH.status.json beside an image file, also when the file is reached through
   * a loop device that shows all of it.
   */
  statusPath?: string;
  /** Install a release older than the running slot's; also installs when that release is unknown or the record unreadable. */
  allowDowngrade?: boolean;
  /**
   * When the running slot's release is unknown (no record, or no entry for the running slot):
   * 'refuse' (the default) throws FastPatchError('DOWNGRADE') before anything is written, since an
   * old signed release could not be told apart; 'allow' installs without a downgrade check (a
   * first install, whose image builder wrote no record). A record that exists but is not valid
   * is refused either way (only allowDowngrade passes it).
   */
  unknownRelease?: UnknownReleasePolicy;
  build?: CoreBuild;
  onProgress?: (p: { imageBytesDone: number; targetSize: number }) => void;
}

/** The slot the bootloader boots next (GRUB model): plain numbers and strings, JSON-safe. */
export type NextBoot = { bootable: true; index: number; label: string } | { bootable: false; index: null; reason: string };

/**
 * What an update did. Plain numbers, strings and booleans only (no BigInt), so
 * JSON.parse(JSON.stringify(result)) gives it back whole.
 */
export interface UpdateResult {
  apply: ApplyResult;
  /** `how`: named by the caller, the slot partition in use, or the bootloader's choice (running.ts). */
  running: { index: number; label: string; how: RunningSlot['how'] };
  /** `written`: the device or byte range the image went to. */
  updated: { index: number; label: string; written: string };
  /** What the bootloader will do on the next boot (GRUB model, not written). */
  nextBoot: NextBoot;
  /** The running slot's release as the status record has it (undefined: unknown, no downgrade check). */
  runningVersion: string | undefined;
  /**
   * The slot status record: where it is, what reading it found before the update (`found`,
   * `missing`, `unreadable`), and why it was unreadable. It now holds the updated slot's release.
   */
  status: { path: string; state: StatusState; problem?: string };
  /** With `resume`: the GPT problems an interrupted flip had left, repaired before going on. */
  gptRepaired?: string[];
}

export async function updateDisk(input: PayloadInput, options: UpdateOptions): Promise<UpdateResult> {
  if (options.tries !== undefined && (!Number.isInteger(options.tries) || options.tries < 1 || options.tries > MAX_TRIES)) {
    throw new RangeError(`tries must be an integer 1..${MAX_TRIES}, got ${options.tries}`);
  }
  const policy = options.unknownRelease ?? 'refuse';
  if (!UNKNOWN_RELEASE_POLICIES.includes(policy)) throw new RangeError(`unknownRelease must be ${UNKNOWN_RELEASE_POLICIES.join(' or ')}, got ${String(policy)}`);
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  const slots = await findSlots(options, typeGuid);
  const plan: UpdatePlan = { options, typeGuid, ...slots, ...(await checkReleasePolicy(options, slots, policy)) };
  const { entries, running, passive, booting } = plan;
  if (booting.bootable && booting.index === passive.index) {
    // Already set to boot next: the previous update got as far as the flip. With --resume, finish
    // it if the slot holds exactly this payload's image; never write a slot that boots next.
    return finishFlippedUpdate(input, plan, booting);
  }
  // The slot change must be allowed before anything is written: the running slot has to be a
  // successful fallback (a slot that was set to boot next but never marked good is not).
  const flip = (e: GptEntry[]) => setNext(e, passive.index, { typeGuid, ...(options.tries !== undefined ? { tries: options.tries } : {}) });
  checkInvariants(entries, flip(entries.map((e) => ({ ...e }))), typeGuid, running.index, false);
  const { apply, written } = await writePassiveSlot(input, plan);
  return recordAndFlip(plan, apply, written, flip);
}

/** The disk's A/B slots as the update found them, and what the bootloader would boot now. */
interface UpdateSlots {
  diskOptions: { sectorSize?: number };
  /** Of the GPT as read (after a repair, with resume). */
  sectorSize: number;
  entries: GptEntry[];
  running: GptEntry;
  how: RunningSlot['how'];
  passive: GptEntry;
  /** GRUB's choice now, without its tries update. */
  booting: BootDecision;
  gptRepaired: string[] | undefined;
}

/** The slot status record as read before the update, and the running slot's release in it. */
interface RunningRelease {
  statusPath: string;
  status: SlotStatus;
  state: StatusState;
  problem: string | undefined;
  runningVersion: string | undefined;
}

/** What the steps after the checks work from. */
interface UpdatePlan extends UpdateSlots, RunningRelease {
  options: UpdateOptions;
  typeGuid: string;
}

/** Reads the GPT (repairing a flip cut short, with resume) and finds the running and passive slots. */
async function findSlots(options: UpdateOptions, typeGuid: string): Promise<UpdateSlots> {
  const diskOptions = options.sectorSize !== undefined ? { sectorSize: options.sectorSize } : {};
  let read = await readDiskGpt(options.disk, diskOptions);
  let gptRepaired: string[] | undefined;
  if (options.resume && read.table && read.problems.length > 0) {
    // A cut during the flip leaves the two copies disagreeing, or one half written (docs/GPT.md,
    // "Transactions"). Finishing the update starts as `fastpatch gpt repair` would: the valid
    // primary wins, else the backup, so the slots are as before the flip or as after it, and the
    // rest of resume goes on from there. A table repair cannot fix stops here, untouched.
    const repaired = await repairGpt(options.disk, diskOptions);
    gptRepaired = repaired.problems;
    read = repaired.after;
  }
  const entries = usableEntries(read, options.disk);
  const slots = entries.filter((e) => sameGuid(e.typeGuid, typeGuid));
  if (slots.length !== 2) throw new FastPatchError('USAGE', `${options.disk} has ${slots.length} slot partitions of type ${typeGuid}; an A/B update needs exactly 2`);
  const { slot: running, how } = await findRunningSlot(options.disk, entries, slots, typeGuid, read.sectorSize, options.running);
  const passive = slots.find((s) => s.index !== running.index)!;
  const booting = grubNext(entries, typeGuid);
  return { diskOptions, sectorSize: read.sectorSize, entries, running, how, passive, booting, gptRepaired };
}

/** Reads the status record and refuses, before anything is written, what the release policy does not allow. */
async function checkReleasePolicy(options: UpdateOptions, slots: UpdateSlots, policy: UnknownReleasePolicy): Promise<RunningRelease> {
  const { running } = slots;
  const statusPath = options.statusPath ?? (await statusPathFor(options.disk));
  const { status, state, problem } = await readStatus(statusPath);
  const runningVersion = status.slots[running.uniqueGuid.toUpperCase()]?.version;
  if (!options.allowDowngrade) refuseUnknownRelease({ state, problem, runningVersion, policy, statusPath, running });
  return { statusPath, status, state, problem, runningVersion };
}

/** The byte range of a slot on the disk. */
function slotRange(e: GptEntry, sectorSize: number): { offset: number; length: number } {
  return { offset: e.firstLba * sectorSize, length: (e.lastLba - e.firstLba + 1) * sectorSize };
}

/**
 * The passive slot already boots next. With resume, and the slot holding exactly this payload's
 * image, the update is finished (the record written); otherwise it is refused.
 */
async function finishFlippedUpdate(input: PayloadInput, plan: UpdatePlan, booting: BootDecision): Promise<UpdateResult> {
  const { options, running, how, passive, runningVersion } = plan;
  const done = options.resume ? await alreadyInstalled(input, options, slotRange(passive, plan.sectorSize)) : undefined;
  if (done) {
    // The same release checks as a fresh update, so --resume is no way around them.
    if (runningVersion !== undefined && !options.allowDowngrade && compareVersions(done.version, runningVersion) < 0) {
      throw new FastPatchError('DOWNGRADE', downgradeMessage(`release ${done.version} is older than release ${runningVersion}, which the device runs; refusing to downgrade`));
    }
    await recordRelease(plan, done, `${options.disk} (already written)`, true);
    return resultOf(plan, done, `${options.disk} (already written)`, booting);
  }
  const runningName = `${running.label ? escapeText(running.label) : `partition ${running.index}`} (${RUNNING_HOW[how]})`;
  throw new FastPatchError('USAGE', getSlotBits(passive.attributes).successful
    ? `slot ${slotName(passive)} boots next and is marked good: it is the running system or its fallback, not the passive slot (running slot taken to be ${runningName}; name it with --running); refusing to overwrite it`
    : `slot ${slotName(passive)} is already set to boot next${options.resume ? ' with another image' : ' (an update awaits a reboot)'}: reboot into it, or cancel it with \`fastpatch gpt mark-good ${options.disk} --slot ${running.label ? escapeText(running.label) : running.index}\` first${options.resume ? '' : ', or --resume to finish an interrupted update of the same payload'}; refusing to overwrite it`);
}

/**
 * Writes the payload into the passive slot, verified as `apply` verifies it, with the running slot
 * as a delta's source. Returns what was applied and the device or byte range it went to.
 */
async function writePassiveSlot(input: PayloadInput, plan: UpdatePlan): Promise<{ apply: ApplyResult; written: string }> {
  const { options, running, passive, runningVersion } = plan;
  await forgetPassive(plan.statusPath, plan.status, passive.uniqueGuid.toUpperCase(), options.disk);
  const targetSlot = await slotDevice(options.disk, slotRange(passive, plan.sectorSize));
  const sourceSlot = await slotDevice(options.disk, slotRange(running, plan.sectorSize));
  let apply: ApplyResult;
  try {
    apply = await applyPayload(input, {
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
  } catch (err) {
    throw inSlotTerms(err, passive, slotRange(passive, plan.sectorSize).length);
  }
  return { apply, written: targetSlot.description };
}

/** Records the written release, then makes the passive slot boot next, once. */
async function recordAndFlip(plan: UpdatePlan, apply: ApplyResult, written: string, flip: (e: GptEntry[]) => GptEntry[]): Promise<UpdateResult> {
  // Recorded after the image is written and verified, before the flip: a record that says what
  // the slot holds, and a flip only once the next update can check against it.
  await recordRelease(plan, apply, written, false);
  const changed = await changeSlots(plan.options.disk, flip, {
    ...plan.diskOptions,
    typeGuid: plan.typeGuid,
    running: plan.running.index,
  });
  return resultOf(plan, apply, written, grubNext(changed.after, plan.typeGuid));
}

/** Notes in the status record the release the passive slot now holds (`flipped`: it already boots next). */
async function recordRelease(plan: UpdatePlan, apply: ApplyResult, written: string, flipped: boolean): Promise<void> {
  const { status, passive } = plan;
  const passiveKey = passive.uniqueGuid.toUpperCase();
  const before = status.slots[passiveKey];
  if (before && before.version === apply.version && before.imageHash === apply.targetHash && before.imageSize === apply.targetSize) return;
  status.slots[passiveKey] = slotRecordOf(passive, apply);
  try {
    await writeStatus(plan.statusPath, status);
  } catch (err) {
    // The record is part of the update: without it the next update could not check for a
    // downgrade. Before the flip, nothing boots the new image yet; --resume keeps it (checked
    // against the signed hashes) and writes the record and the flip.
    const next = flipped
      ? `slot ${slotName(passive)} holds release ${apply.version} and boots next, but the record still says otherwise`
      : `release ${apply.version} is written into slot ${slotName(passive)} (${written}) and verified, but the slot was NOT set to boot next`;
    throw new FastPatchError('IO', `${next}: ${(err as Error).message}; make the record writable (or choose another place with --status), then run again with --resume`, { cause: err });
  }
}

/** The update's result (JSON-safe: see UpdateResult). */
function resultOf(plan: UpdatePlan, apply: ApplyResult, written: string, nextBoot: BootDecision): UpdateResult {
  const { running, passive, state, problem, gptRepaired } = plan;
  return {
    runningVersion: plan.runningVersion,
    status: { path: plan.statusPath, state, ...(problem !== undefined ? { problem } : {}) },
    ...(gptRepaired ? { gptRepaired } : {}),
    apply,
    running: { index: running.index, label: running.label, how: plan.how },
    updated: { index: passive.index, label: passive.label, written },
    nextBoot: plainNextBoot(nextBoot, plan.entries),
  };
}

/** A slot's name for messages: its label (escaped: it comes from the disk) and partition number. */
function slotName(e: GptEntry): string {
  return e.label ? `${escapeText(e.label)} (partition ${e.index})` : `partition ${e.index}`;
}

function downgradeMessage(base: string): string {
  return /--allow-downgrade/.test(base) ? base : `${base}; to install it anyway, run again with --allow-downgrade`;
}

/**
 * Refuses (FastPatchError 'DOWNGRADE', before anything is written) an update whose running
 * release cannot be checked: an unreadable record always (it was not written by `update`, which
 * writes atomically, so it was damaged or altered: what it hid is unknown), an unknown release
 * unless the policy allows it.
 */
function refuseUnknownRelease(c: { state: StatusState; problem: string | undefined; runningVersion: string | undefined; policy: UnknownReleasePolicy; statusPath: string; running: GptEntry }): void {
  if (c.state === 'unreadable') {
    throw new FastPatchError('DOWNGRADE', `${c.problem}; a damaged or altered record could hide a downgrade, so nothing was written: check it, then move it away and run again with --unknown-release allow, or install regardless of release with --allow-downgrade`);
  }
  if (c.runningVersion !== undefined || c.policy === 'allow') return;
  const why = c.state === 'missing' ? `no slot status record ${c.statusPath}` : `${c.statusPath} has no entry for it`;
  throw new FastPatchError('DOWNGRADE', `release of the running slot ${slotName(c.running)} unknown (${why}), so a downgrade cannot be ruled out; nothing was written: a new disk gets its first release with \`fastpatch apply PAYLOAD --target DISK --slot ${c.running.label ? escapeText(c.running.label) : c.running.index} --pubkey KEY\`, which records it; for a disk installed by other means, run again with --unknown-release allow (or UNKNOWN_RELEASE=allow in ${DEFAULT_UPDATE_CONFIG}); to install regardless of release, --allow-downgrade`);
}

/**
 * Before the passive slot is written: the record stops saying it holds its old release (a cut in
 * the middle leaves neither), and must be writable at all (a read-only or full /var is found
 * before the slot is touched, not after).
 */
async function forgetPassive(statusPath: string, status: SlotStatus, passiveKey: string, disk: string): Promise<void> {
  try {
    if (Object.hasOwn(status.slots, passiveKey)) {
      delete status.slots[passiveKey];
      await writeStatus(statusPath, status);
    } else {
      await probeStatusWritable(statusPath);
    }
  } catch (err) {
    throw new FastPatchError('IO', `slot status record ${statusPath} cannot be written (${(err as Error).message}); nothing was written to ${disk}: make it writable, or choose another place with --status`, { cause: err });
  }
}

/** An applier error about the target, said in terms of the slot (the disk's name would mislead). */
function inSlotTerms(err: unknown, passive: GptEntry, slotBytes: number): unknown {
  if (!(err instanceof FastPatchError)) return err;
  if (err.code === 'DOWNGRADE') return new FastPatchError('DOWNGRADE', downgradeMessage(err.message), { cause: err });
  if (err.code === 'TARGET_TOO_SMALL') {
    const needed = /the image needs (\d+)/.exec(err.message)?.[1];
    const need = needed !== undefined ? `the image needs ${needed} bytes (${mib(Number(needed))})` : `less than the image needs (${err.message})`;
    return new FastPatchError('TARGET_TOO_SMALL', `slot ${slotName(passive)} holds ${slotBytes} bytes (${mib(slotBytes)}), ${need}: this disk's slots are too small for this release; use a disk with larger slots (fastpatch gpt create --size)`, { cause: err });
  }
  return err;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** The bootloader's decision without its table copy (whose attribute words are BigInt). */
function plainNextBoot(d: BootDecision, entries: readonly GptEntry[]): NextBoot {
  if (!d.bootable) return { bootable: false, index: null, reason: d.reason };
  return { bootable: true, index: d.index, label: entries.find((e) => e.index === d.index)?.label ?? '' };
}
