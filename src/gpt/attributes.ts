/**
 * GPT partition attribute bits (the 64-bit `Attributes` field of a partition entry, UEFI 2.10
 * §5.3.3, table 5-7), and the ChromeOS/CoreOS use of the GUID-specific bits 48-63 for A/B slots:
 * priority (48-51), tries (52-55), successful (56). Pure bigint arithmetic; no I/O.
 *
 * Every setter is a read-modify-write that keeps each bit it does not name, as vboot, GRUB and
 * `cgpt add -P/-T/-S` do. (Not like `cgpt add -A`, which replaces all of bits 48-63.)
 */
import { PARTITION_TYPES } from './guid.js';

// The slot-related partition types, by the names the slot functions use; the values live once,
// in guid.ts.
/** ChromeOS kernel partition type: vboot boots it, Debian/upstream `cgpt prioritize` renumbers it. */
export const CHROMEOS_KERNEL_TYPE = PARTITION_TYPES.CHROMEOS_KERNEL;
/** ChromeOS rootfs type: carries no priority. */
export const CHROMEOS_ROOTFS_TYPE = PARTITION_TYPES.CHROMEOS_ROOTFS;
/** Android vbmeta type, a kernel-like boot type in newer vboot. */
export const ANDROID_VBMETA_TYPE = PARTITION_TYPES.ANDROID_VBMETA;
/** CoreOS/Flatcar `/usr` type ("coreos-usr", "flatcar-usr", sgdisk 8500): what GRUB gptprio boots. */
export const FLATCAR_USR_TYPE = PARTITION_TYPES.COREOS_USR;
/** Flatcar ROOT (resize) type, sgdisk 8501. */
export const FLATCAR_ROOT_TYPE = PARTITION_TYPES.COREOS_ROOT;

/** One used partition entry, as the slot functions see it. Unused entries are simply absent. */
export interface SlotEntry {
  /** 1-based partition number (entry index + 1), as cgpt `-i` and sgdisk count. */
  index: number;
  /** Partition type GUID in display form (case-insensitive). */
  typeGuid: string;
  uniqueGuid?: string;
  label?: string;
  /** The whole 64-bit attribute word, 0n..2^64-1. */
  attributes: bigint;
}

/** The A/B bits of one partition. */
export interface SlotBits {
  /** 0..15; 0 = never boot, higher wins. */
  priority: number;
  /** 0..15 boot attempts left (GRUB: `tries_left`). */
  tries: number;
  /** Booted fine at least once. */
  successful: boolean;
}

/** Bit positions and widths of the named fields (reference notes §1.1). */
export const ATTRIBUTE_FIELDS = {
  /** UEFI "platform required" (cgpt `-R`). */
  required: { shift: 0, width: 1 },
  /** UEFI "no block-IO protocol" (vboot `efi_ignore`). */
  noBlockIo: { shift: 1, width: 1 },
  /** UEFI "legacy BIOS bootable" (cgpt `-B`). */
  legacyBoot: { shift: 2, width: 1 },
  priority: { shift: 48, width: 4 },
  tries: { shift: 52, width: 4 },
  successful: { shift: 56, width: 1 },
  /** vboot >= 2023 verity error counter (cgpt `-E`, not in Debian's R106); GRUB ignores it. */
  errorCounter: { shift: 57, width: 1 },
  /** Microsoft basic-data / Discoverable Partitions: read-only. */
  readOnly: { shift: 60, width: 1 },
  hidden: { shift: 62, width: 1 },
  noAutomount: { shift: 63, width: 1 },
} as const;

export type AttributeField = keyof typeof ATTRIBUTE_FIELDS;

/** Maximum priority and tries (4-bit fields). */
export const MAX_PRIORITY = 15;
export const MAX_TRIES = 15;

const U64_MAX = (1n << 64n) - 1n;

/** The bits priority, tries and successful occupy: the only ones the slot operations write. */
export const SLOT_BITS_MASK = 0x01ff_0000_0000_0000n;

function checkAttributes(attributes: bigint): void {
  if (typeof attributes !== 'bigint') throw new TypeError(`attributes must be a bigint, got ${typeof attributes}`);
  if (attributes < 0n || attributes > U64_MAX) throw new RangeError(`attributes 0x${attributes.toString(16)} is not a 64-bit unsigned value`);
}

function fieldMask(field: AttributeField): bigint {
  const { shift, width } = ATTRIBUTE_FIELDS[field];
  return ((1n << BigInt(width)) - 1n) << BigInt(shift);
}

/** Reads one named field as a number. Throws RangeError/TypeError for a value that is not a u64. */
export function getField(attributes: bigint, field: AttributeField): number {
  checkAttributes(attributes);
  return Number((attributes & fieldMask(field)) >> BigInt(ATTRIBUTE_FIELDS[field].shift));
}

/**
 * Returns `attributes` with one named field set to `value`, every other bit unchanged.
 * Throws RangeError when `value` does not fit the field (e.g. priority 16: cgpt rejects it too).
 */
export function setField(attributes: bigint, field: AttributeField, value: number): bigint {
  checkAttributes(attributes);
  const { shift, width } = ATTRIBUTE_FIELDS[field];
  const max = 2 ** width - 1;
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${field} must be an integer 0..${max}, got ${value}`);
  return (attributes & ~fieldMask(field) & U64_MAX) | (BigInt(value) << BigInt(shift));
}

/** Priority, 0..15. */
export const getPriority = (attributes: bigint): number => getField(attributes, 'priority');
/** Tries left, 0..15. */
export const getTries = (attributes: bigint): number => getField(attributes, 'tries');
/** The successful bit. */
export const getSuccessful = (attributes: bigint): boolean => getField(attributes, 'successful') === 1;
/** Sets priority (0..15); throws RangeError outside that. */
export const setPriority = (attributes: bigint, priority: number): bigint => setField(attributes, 'priority', priority);
/** Sets tries (0..15); throws RangeError outside that. */
export const setTries = (attributes: bigint, tries: number): bigint => setField(attributes, 'tries', tries);
/** Sets or clears the successful bit. */
export const setSuccessful = (attributes: bigint, successful: boolean): bigint => setField(attributes, 'successful', successful ? 1 : 0);

/** The A/B bits of an attribute word. */
export function getSlotBits(attributes: bigint): SlotBits {
  return { priority: getPriority(attributes), tries: getTries(attributes), successful: getSuccessful(attributes) };
}

/** Returns `attributes` with the given A/B bits written and every other bit kept. Throws RangeError for out-of-range values. */
export function setSlotBits(attributes: bigint, bits: Partial<SlotBits>): bigint {
  let out = attributes;
  if (bits.priority !== undefined) out = setPriority(out, bits.priority);
  if (bits.tries !== undefined) out = setTries(out, bits.tries);
  if (bits.successful !== undefined) out = setSuccessful(out, bits.successful);
  checkAttributes(out);
  return out;
}

/** A slot is bootable when both bootloaders would consider it: priority > 0 and (tries > 0 or successful). */
export function isBootable(attributes: bigint): boolean {
  const { priority, tries, successful } = getSlotBits(attributes);
  return priority > 0 && (tries > 0 || successful);
}

/** Upper-case display form, so type GUIDs compare whatever case the caller used. */
export function sameGuid(a: string, b: string): boolean {
  return a.toUpperCase() === b.toUpperCase();
}

/** `P T S` as cgpt prints them, for messages and test names. */
export function formatSlotBits(attributes: bigint): string {
  const { priority, tries, successful } = getSlotBits(attributes);
  return `P${priority} T${tries} S${successful ? 1 : 0}`;
}
