/**
 * The GPT codec and the A/B slot policy, pure: buffers and entries in, buffers and entries out, no
 * I/O (`fastpatch/gpt`). What the disk layer (src/disk/) and the update build on, for programs that
 * read, check or plan GPT changes themselves; docs/GPT.md describes the bytes.
 */
export { readGpt, writeGptPlan, type GptReadResult, type GptTable, type GptCopy, type GptProblem, type GptPlace, type SectorReader, type TableRegion } from './table.js';
export { decodeEntries, encodeEntries, isUsed, NAME_UNITS, type GptEntry } from './entries.js';
export { decodeHeader, encodeHeader, headerCrc, SECTOR_SIZES, STANDARD_ENTRY_COUNT, STANDARD_ENTRY_SIZE, type GptHeader } from './header.js';
export { parseMbr, buildProtectiveMbr, type MbrInfo, type MbrRecord } from './mbr.js';
export { commitPlan, type GptRegion, type SectorWrite, type CommitPlan } from './commit.js';
export { flatcarLayout, FLATCAR_SIZES, FLATCAR_MIN_DISK_BYTES } from './layout.js';
export { crc32 } from './crc32.js';
export { PARTITION_TYPES, FLATCAR_SLOT_GUIDS, normalizeGuid, isGuid } from './guid.js';
export {
  getSlotBits, setSlotBits, isBootable, formatSlotBits, sameGuid, MAX_PRIORITY, MAX_TRIES,
  FLATCAR_USR_TYPE, FLATCAR_ROOT_TYPE, CHROMEOS_KERNEL_TYPE, CHROMEOS_ROOTFS_TYPE, type SlotEntry, type SlotBits,
} from './attributes.js';
export { prioritize, setNext, markGood, type PrioritizeOptions, type SetNextOptions } from './prioritize.js';
export { grubNext, grubBoot, vbootNext, type BootDecision, type GrubBootOptions, type VbootOptions } from './boot-model.js';
