/**
 * Partition layouts for new disks (`fastpatch gpt create`), for image builders and tests. The
 * "flatcar" layout has Flatcar's partitions, numbers, labels and types (EFI-SYSTEM 1, USR-A 3,
 * USR-B 4, OEM 6, ROOT 9). On a disk with room for them it has Flatcar's sizes too (its
 * build_library/disk_layout.json: EFI 1 GiB, each USR slot 2 GiB, OEM 1 GiB, 2 MiB alignment, ROOT
 * the rest, at least 1 GiB: a disk of 7 GiB or more). Smaller disks, for tests and demos, get the
 * same partitions scaled: 1/16 for EFI and OEM, 1/4 for each USR slot, ROOT the rest, 1 MiB
 * aligned. USR-A starts as the booted, good slot (priority 1, successful), USR-B empty (priority
 * 0), as a fresh Flatcar image is.
 */
import { randomUUID } from 'node:crypto';
import { FLATCAR_USR_TYPE, setSlotBits } from './attributes.js';
import { PARTITION_TYPES } from './guid.js';
import { STANDARD_ENTRY_COUNT, STANDARD_ENTRY_SIZE, entrySectors } from './header.js';
import type { GptEntry, GptTable } from './table.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Flatcar's own sizes, and the smallest ROOT with which the disk still gets them. */
export const FLATCAR_SIZES = { efi: GiB, usr: 2 * GiB, oem: GiB, alignment: 2 * MiB, minRoot: GiB } as const;

/** The smallest disk a flatcar layout fits on (its USR slots then hold about 7 MiB each: tests and demos only). */
export const FLATCAR_MIN_DISK_BYTES = 32 * MiB;

/** The smallest disk that gets Flatcar's own partition sizes (2 GiB USR slots). */
export const FLATCAR_FULL_DISK_BYTES = FLATCAR_SIZES.alignment + FLATCAR_SIZES.efi + 2 * FLATCAR_SIZES.usr + FLATCAR_SIZES.oem + FLATCAR_SIZES.minRoot + MiB;

export function flatcarLayout(diskBytes: number, sectorSize: number): GptTable {
  const sectors = Math.floor(diskBytes / sectorSize);
  const n = entrySectors(STANDARD_ENTRY_COUNT, STANDARD_ENTRY_SIZE, sectorSize);
  if (diskBytes < FLATCAR_MIN_DISK_BYTES) throw new RangeError(`a flatcar layout needs at least 32 MiB, got ${diskBytes} bytes`);
  const F = FLATCAR_SIZES;
  const full = diskBytes >= FLATCAR_FULL_DISK_BYTES;
  const align = (full ? F.alignment : MiB) / sectorSize;
  const lastUsable = sectors - 2 - n;
  const usable = lastUsable - align + 1;
  const scaled = (fraction: number) => Math.max(align, Math.floor((usable * fraction) / align) * align);
  const sizes = full
    ? { efi: F.efi / sectorSize, usr: F.usr / sectorSize, oem: F.oem / sectorSize }
    : { efi: scaled(1 / 16), usr: scaled(1 / 4), oem: scaled(1 / 16) };
  let next = align;
  const entries: GptEntry[] = [];
  const add = (index: number, label: string, typeGuid: string, length: number | 'rest', attributes = 0n) => {
    const size = length === 'rest' ? Math.floor((lastUsable + 1 - next) / align) * align : length;
    entries.push({ index, label, typeGuid, uniqueGuid: randomUUID().toUpperCase(), firstLba: next, lastLba: next + size - 1, attributes });
    next += size;
  };
  add(1, 'EFI-SYSTEM', PARTITION_TYPES.EFI_SYSTEM, sizes.efi);
  add(3, 'USR-A', FLATCAR_USR_TYPE, sizes.usr, setSlotBits(0n, { priority: 1, tries: 0, successful: true }));
  add(4, 'USR-B', FLATCAR_USR_TYPE, sizes.usr);
  add(6, 'OEM', PARTITION_TYPES.LINUX_FILESYSTEM, sizes.oem);
  add(9, 'ROOT', PARTITION_TYPES.COREOS_ROOT, 'rest');
  return {
    diskGuid: randomUUID().toUpperCase(),
    firstUsableLba: 2 + n,
    lastUsableLba: lastUsable,
    primaryEntriesLba: 2,
    backupHeaderLba: sectors - 1,
    backupEntriesLba: sectors - 1 - n,
    entryCount: STANDARD_ENTRY_COUNT,
    entrySize: STANDARD_ENTRY_SIZE,
    entries,
  };
}
