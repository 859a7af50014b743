/**
 * GUIDs in GPT: the display form "0FC63DAF-8483-4772-8E79-3D69D8477DE4" and the 16-byte on-disk
 * form, in which the first three fields are little-endian and the last 8 bytes are stored as
 * written (UEFI 2.10 appendix A; docs/GPT.md, "GUIDs"). The display form is always uppercase here,
 * as cgpt and sgdisk print it; input may be either case. No UUID version nibble is checked: cgpt
 * writes random GUIDs without one.
 */

/** Bytes of a GUID on disk. */
export const GUID_SIZE = 16;

const GUID_RE = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
/** For each display hex pair (in order, dashes removed), the on-disk byte index it goes to. */
const DISPLAY_TO_DISK = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15] as const;

/** Partition type GUIDs that the A/B scheme and the usual layouts use (reference notes §1.2). */
export const PARTITION_TYPES = {
  /** All zero: an unused entry. */
  UNUSED: '00000000-0000-0000-0000-000000000000',
  /** CoreOS / Flatcar `/usr` (sgdisk code 8500): the slot type GRUB `gptprio.next` selects among. */
  COREOS_USR: '5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6',
  /** Flatcar resizable root, "ROOT" (sgdisk code 8501). */
  COREOS_ROOT: '3884DD41-8582-4404-B9A8-E9B84F2DF50E',
  /** ChromeOS kernel: the slot type vboot and `cgpt prioritize` select among. */
  CHROMEOS_KERNEL: 'FE3A2A5D-4F32-41A7-B725-ACCC3285A309',
  /** ChromeOS rootfs: carries no priority; kernel N pairs with rootfs N+1. */
  CHROMEOS_ROOTFS: '3CB8E202-3B7E-47DD-8A3C-7FF2A13CFCEC',
  /** Android vbmeta, prioritized by newer vboot. */
  ANDROID_VBMETA: '88434509-D9D1-487D-B82C-15EF964CBD4B',
  /** EFI system partition (sgdisk code EF00). */
  EFI_SYSTEM: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  /** BIOS boot partition (sgdisk code EF02). */
  BIOS_BOOT: '21686148-6449-6E6F-744E-656564454649',
  /** Linux filesystem data (sgdisk code 8300); what `cgpt add -t data` writes and cgpt shows as "Linux data" (R106, checked). */
  LINUX_FILESYSTEM: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  /** Microsoft basic data (sgdisk code 0700). */
  BASIC_DATA: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
} as const;

/** Flatcar's fixed unique GUIDs of the two slots (build_library/disk_layout.json). */
export const FLATCAR_SLOT_GUIDS = {
  USR_A: '7130C94A-213A-4E5A-8E26-6CCE9662F132',
  USR_B: 'E03DD35C-7C2D-4A47-B3FE-27F15780A57C',
} as const;

/** True if `s` is a GUID in display form (either case). */
export function isGuid(s: string): boolean {
  return GUID_RE.test(s);
}

/** Uppercase display form of a GUID given in either case. Throws TypeError if `s` is not a GUID. */
export function normalizeGuid(s: string): string {
  if (!GUID_RE.test(s)) throw new TypeError(`guid "${s}" is not of the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`);
  return s.toUpperCase();
}

/**
 * Writes the on-disk form of display GUID `guid` into `out` at `offset` (16 bytes).
 * Throws TypeError for a malformed GUID and RangeError if the 16 bytes do not fit.
 */
export function guidToBytesInto(guid: string, out: Uint8Array, offset: number): void {
  const hex = normalizeGuid(guid).replace(/-/g, '');
  if (!Number.isInteger(offset) || offset < 0 || offset + GUID_SIZE > out.length) {
    throw new RangeError(`offset ${offset}: a GUID needs 16 bytes in a buffer of ${out.length}`);
  }
  for (let i = 0; i < GUID_SIZE; i++) {
    out[offset + (DISPLAY_TO_DISK[i] as number)] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
}

/** The 16-byte on-disk form of display GUID `guid` (a new buffer). Throws TypeError for a malformed GUID. */
export function guidToBytes(guid: string): Uint8Array {
  const out = new Uint8Array(GUID_SIZE);
  guidToBytesInto(guid, out, 0);
  return out;
}

/** Uppercase display form of the on-disk GUID at `bytes[offset..offset+16)`. Throws RangeError if it does not fit. */
export function guidFromBytes(bytes: Uint8Array, offset = 0): string {
  if (!Number.isInteger(offset) || offset < 0 || offset + GUID_SIZE > bytes.length) {
    throw new RangeError(`offset ${offset}: a GUID needs 16 bytes in a buffer of ${bytes.length}`);
  }
  let hex = '';
  for (let i = 0; i < GUID_SIZE; i++) {
    hex += (bytes[offset + (DISPLAY_TO_DISK[i] as number)] as number).toString(16).padStart(2, '0');
    if (i === 3 || i === 5 || i === 7 || i === 9) hex += '-';
  }
  return hex.toUpperCase();
}
