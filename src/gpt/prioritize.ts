/**
 * Priority renumbering identical to `cgpt prioritize [-i N] [-f] [-P max]` (vboot_reference
 * `cgpt/cgpt_prioritize.c`; Flatcar's fork has the same logic for the `/usr` type), and the
 * userspace flows built on it: Flatcar's postinst (set-next) and setgoodroot (mark-good).
 * Plain data in, new plain data out; no I/O. Only priority, tries and successful are ever written.
 */
import { FastPatchError } from '../errors.js';
import { FLATCAR_USR_TYPE, MAX_PRIORITY, MAX_TRIES, getPriority, sameGuid, setPriority, setSlotBits, type SlotEntry } from './attributes.js';

export interface PrioritizeOptions {
  /** Type GUID of the slot partitions that take part; default the Flatcar `/usr` type. */
  typeGuid?: string;
  /** cgpt `-f`: the chosen partition's whole original-priority group moves to the top. Needs a chosen partition. */
  friends?: boolean;
  /** cgpt `-P`: the top priority to hand out, 1..15. Default min(number of groups, 15). */
  maxPriority?: number;
}

/** Pseudo-priority of the chosen group: above every real priority (cgpt uses 99 too). */
const CHOSEN_GROUP = 99;

function checkEntries(entries: readonly SlotEntry[]): void {
  if (!Array.isArray(entries)) throw new TypeError('entries must be an array');
  const seen = new Set<number>();
  for (const e of entries) {
    if (!Number.isInteger(e.index) || e.index < 1) throw new RangeError(`entry index must be a partition number >= 1, got ${e.index}`);
    if (seen.has(e.index)) throw new RangeError(`entries name partition ${e.index} twice`);
    seen.add(e.index);
  }
}

/**
 * The entry numbered `index` of the slot type; throws FastPatchError('USAGE') naming the partition
 * otherwise (cgpt: "is not a ChromeOS kernel"): a user names slots, so this is a usage error.
 */
function slotEntry(entries: readonly SlotEntry[], index: number, typeGuid: string): SlotEntry {
  const entry = entries.find((e) => e.index === index);
  if (entry === undefined || !sameGuid(entry.typeGuid, typeGuid)) {
    throw new FastPatchError('USAGE', `partition ${index} is not a slot partition (type ${typeGuid})`);
  }
  return entry;
}

/**
 * New priorities as `cgpt prioritize` computes them, returned as a copy of `entries` (same order)
 * where only the priority bits of slot-type entries may differ.
 *
 * Slot entries are grouped by current priority; the chosen partition (`-i`) alone, or its whole
 * group with `friends` (`-f`), becomes the top group. Groups are ranked highest first; a priority-0
 * group left last is not renumbered. The top group gets `maxPriority` (or min(groups, 15)) and each
 * later group one less, never below 1. Tries and successful are never changed.
 *
 * `chosenIndex` is a 1-based partition number or undefined (no `-i`). Throws RangeError when it
 * is not a slot entry, when `maxPriority` is outside 1..15 or the entries are malformed, and
 * TypeError for `friends` without a chosen partition (cgpt refuses both).
 */
export function prioritize<E extends SlotEntry>(entries: readonly E[], chosenIndex?: number, options: PrioritizeOptions = {}): E[] {
  checkEntries(entries);
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  const friends = options.friends ?? false;
  const { maxPriority } = options;
  if (friends && chosenIndex === undefined) throw new TypeError('friends (-f) needs a chosen partition (-i)');
  if (maxPriority !== undefined && (!Number.isInteger(maxPriority) || maxPriority < 1 || maxPriority > MAX_PRIORITY)) {
    throw new RangeError(`maxPriority must be an integer 1..${MAX_PRIORITY}, got ${maxPriority}`);
  }
  const chosen = chosenIndex === undefined ? undefined : slotEntry(entries, chosenIndex, typeGuid);
  const chosenPriority = chosen === undefined ? undefined : getPriority(chosen.attributes);

  // Group key per slot entry: its priority, or the chosen pseudo-group.
  const groupOf = new Map<number, number>();
  for (const e of entries) {
    if (!sameGuid(e.typeGuid, typeGuid)) continue;
    const p = getPriority(e.attributes);
    const isChosen = e === chosen || (friends && p === chosenPriority);
    groupOf.set(e.index, isChosen ? CHOSEN_GROUP : p);
  }
  if (groupOf.size === 0) return entries.map((e) => ({ ...e }));

  const ranked = [...new Set(groupOf.values())].sort((a, b) => b - a);
  // Nothing is ever lowered to 0, and what is at 0 stays there (unless chosen).
  if (ranked[ranked.length - 1] === 0) ranked.pop();
  let next = maxPriority ?? Math.min(ranked.length, MAX_PRIORITY);
  const newPriority = new Map<number, number>();
  for (const group of ranked) {
    newPriority.set(group, next);
    if (next > 1) next--;
  }

  return entries.map((e) => {
    const group = groupOf.get(e.index);
    const p = group === undefined ? undefined : newPriority.get(group);
    return p === undefined ? { ...e } : { ...e, attributes: setPriority(e.attributes, p) };
  });
}

export interface SetNextOptions {
  typeGuid?: string;
  /** Boot attempts for the new slot: 1 on Flatcar (postinst), 6 on ChromeOS (SetActiveBootSlot). */
  tries?: number;
}

/**
 * Makes partition `index` the one to boot next, once: tries = `tries` (default 1), successful = 0,
 * then `prioritize` with it on top, as Flatcar's `flatcar-postinst` does (`cgpt add -S0 -T1`;
 * `cgpt prioritize`). Returns a copy of `entries`. Throws RangeError as `prioritize` does, and for
 * tries outside 1..15 (0 would leave the slot unbootable).
 */
export function setNext<E extends SlotEntry>(entries: readonly E[], index: number, options: SetNextOptions = {}): E[] {
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  const tries = options.tries ?? 1;
  if (!Number.isInteger(tries) || tries < 1 || tries > MAX_TRIES) throw new RangeError(`tries must be an integer 1..${MAX_TRIES}, got ${tries}`);
  checkEntries(entries);
  slotEntry(entries, index, typeGuid);
  const updated = entries.map((e) => (e.index === index ? { ...e, attributes: setSlotBits(e.attributes, { tries, successful: false }) } : e));
  return prioritize(updated, index, { typeGuid });
}

/**
 * Marks partition `index` good, as Flatcar's `flatcar-setgoodroot` and ChromeOS'
 * `chromeos-setgoodkernel` do: successful = 1, tries = 0, then `prioritize` with it on top.
 * Idempotent. Returns a copy of `entries`; throws RangeError as `prioritize` does.
 */
export function markGood<E extends SlotEntry>(entries: readonly E[], index: number, options: { typeGuid?: string } = {}): E[] {
  const typeGuid = options.typeGuid ?? FLATCAR_USR_TYPE;
  checkEntries(entries);
  slotEntry(entries, index, typeGuid);
  const updated = entries.map((e) => (e.index === index ? { ...e, attributes: setSlotBits(e.attributes, { tries: 0, successful: true }) } : e));
  return prioritize(updated, index, { typeGuid });
}
