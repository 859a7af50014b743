/**
 * Whole GPT tables: both copies read and cross-checked, and the sector writes for a table
 * (UEFI 2.10 §5.3; reference notes §4.3, §4.7, §5.3; docs/GPT.md); the entry array's codec is in
 * entries.ts. No I/O: the caller supplies a sector reader and performs the writes, in the order it
 * chooses.
 */
import { FastPatchError } from '../errors.js';
import { crc32 } from './crc32.js';
import { decodeEntries, encodeEntries, isUsed, type GptEntry } from './entries.js';
import { normalizeGuid } from './guid.js';
import {
  type GptHeader, HEADER_SIZE, MAX_ENTRY_ARRAY_BYTES, MIN_ENTRY_ARRAY_BYTES, REVISION, SIGNATURE, STANDARD_ENTRY_COUNT, STANDARD_ENTRY_SIZE,
  checkGeometryArgs, decodeHeader, encodeHeader, entrySectors, hex32,
} from './header.js';
import { buildProtectiveMbr, type MbrInfo, parseMbr } from './mbr.js';

export { NAME_UNITS, decodeEntries, encodeEntries, isUsed, type GptEntry } from './entries.js';

/** Where a problem was found. */
export type GptPlace = 'mbr' | 'primary' | 'backup' | 'table';

/** One finding of readGpt, one line. 'invalid' makes that copy unusable; 'warning' means some reader would refuse or complain. */
export interface GptProblem {
  place: GptPlace;
  severity: 'invalid' | 'warning';
  message: string;
}

/** One copy (header + entry array) as read. */
export interface GptCopy {
  /** LBA the header was read from. */
  lba: number;
  /** Undefined when the header failed decodeHeader. */
  header: GptHeader | undefined;
  /** The entry array bytes (count × size), when the header decoded and the sectors could be read. */
  entriesBytes: Uint8Array | undefined;
  /** Header valid and entry-array CRC matches. */
  valid: boolean;
}

/** A table as written: the geometry of both copies, the entries and what to keep of the old bytes. */
export interface GptTable {
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  primaryEntriesLba: number;
  backupHeaderLba: number;
  backupEntriesLba: number;
  entryCount: number;
  entrySize: number;
  /** Entries to write, placed by partition number `index`; entries missing here come from `entriesBase`, else are zero. */
  entries: GptEntry[];
  /** The entry array as read; unchanged entries are kept byte for byte. */
  entriesBase?: Uint8Array | undefined;
  /** LBA 0 as read; its boot code and disk signature are kept. */
  lba0?: Uint8Array | undefined;
}

/** Result of readGpt. */
export interface GptReadResult {
  sectorSize: number;
  diskSectors: number;
  mbr: MbrInfo;
  primary: GptCopy;
  backup: GptCopy;
  /** The copy the table comes from: the primary when valid (every reader prefers it), else the backup. */
  source: 'primary' | 'backup' | undefined;
  /** From the source copy; undefined when neither copy is valid. */
  table: GptTable | undefined;
  /** Everything found, most important first; empty means every reader accepts the disk and FastPatch may write it. */
  problems: GptProblem[];
}

/** Records one finding of readGpt. */
type AddProblem = (place: GptPlace, severity: GptProblem['severity'], message: string) => void;

/** Reads `count` sectors from `lba`; may return fewer bytes at the end of a device. */
export type SectorReader = (lba: number, count: number) => Uint8Array;

const SHARED_FIELDS = ['revision', 'headerSize', 'firstUsableLba', 'lastUsableLba', 'diskGuid', 'entryCount', 'entrySize', 'entriesCrc32'] as const;

/**
 * Reads LBA 0, both headers and both entry arrays through `read`, and cross-checks them.
 * The backup header is looked for at the primary's AlternateLBA, or at the last LBA when the
 * primary header is unusable. Never throws for bad data (every finding is in `problems`);
 * throws RangeError for bad arguments and whatever `read` throws.
 */
export function readGpt(read: SectorReader, sectorSize: number, diskSectors: number): GptReadResult {
  // A disk (or image file) of fewer than 3 sectors is bad data, not a bad argument: it is
  // reported like any disk without a GPT instead of escaping as a RangeError (fuzz: a 1000-byte
  // image made `gpt show` and `gpt set-next` exit 1 "INTERNAL").
  if (Number.isSafeInteger(diskSectors) && diskSectors >= 0 && diskSectors < 3) return tooSmall(read, sectorSize, diskSectors);
  checkGeometryArgs(sectorSize, diskSectors);
  const problems: GptProblem[] = [];
  const add = (place: GptPlace, severity: GptProblem['severity'], message: string) => void problems.push({ place, severity, message });
  const lastLba = diskSectors - 1;

  const lba0 = read(0, 1);
  const mbr = parseMbr(lba0, diskSectors);
  if (mbr.kind === 'missing') add('mbr', 'warning', `no protective MBR (the Linux kernel ignores the GPT): ${mbr.reason}`);
  else if (!mbr.sizeMatches) add('mbr', 'warning', `protective MBR record size is not min(disk sectors − 1, 0xFFFFFFFF) = ${Math.min(lastLba, 0xffffffff)}`);

  const primary = readCopy(read, 1, sectorSize, diskSectors, 'primary', add);
  if (primary.header === undefined) noteOtherSectorSize(read, lba0, sectorSize, add);
  let backupLba = lastLba;
  if (primary.header !== undefined) {
    backupLba = primary.header.alternateLba;
    if (backupLba !== lastLba) add('primary', 'warning', `AlternateLBA ${backupLba} is not the last LBA ${lastLba} (cgpt calls the backup invalid)`);
  }
  const backup = readCopy(read, backupLba, sectorSize, diskSectors, 'backup', add);

  const p = primary.header, b = backup.header;
  if (p !== undefined) checkStrict(p, 'primary', add);
  if (b !== undefined) {
    checkStrict(b, 'backup', add);
    if (b.alternateLba !== 1) {
      add('backup', 'invalid', `AlternateLBA is ${b.alternateLba}, not the primary header's LBA 1`);
      backup.valid = false;
    }
  }
  if (p !== undefined && b !== undefined) {
    for (const f of SHARED_FIELDS) {
      if (p[f] !== b[f]) add('table', 'warning', `primary and backup headers differ in ${f}: ${String(p[f])} vs ${String(b[f])}`);
    }
    const pEnd = p.partitionEntryLba + entrySectors(p.entryCount, p.entrySize, sectorSize) - 1;
    if (b.partitionEntryLba <= pEnd && b.partitionEntryLba >= p.partitionEntryLba) add('table', 'invalid', 'primary and backup entry arrays overlap');
    if (b.partitionEntryLba <= p.lastUsableLba) add('backup', 'warning', `entry array at LBA ${b.partitionEntryLba} starts inside the primary's usable range`);
  }
  if (primary.valid && backup.valid && primary.entriesBytes !== undefined && backup.entriesBytes !== undefined
      && !bytesEqual(primary.entriesBytes, backup.entriesBytes)) {
    add('table', 'warning', 'primary and backup entry arrays differ (the primary wins; repair before writing)');
  }

  const source = primary.valid ? 'primary' : backup.valid ? 'backup' : undefined;
  let table: GptTable | undefined;
  if (source === undefined) {
    add('table', 'invalid', 'neither GPT copy is valid');
  } else {
    table = tableOf(source, primary, backup, mbr.kind === 'missing' ? undefined : lba0.slice(0, sectorSize), sectorSize, add);
  }
  problems.sort((x, y) => (x.severity === y.severity ? 0 : x.severity === 'invalid' ? -1 : 1));
  return { sectorSize, diskSectors, mbr, primary, backup, source, table, problems };
}

/**
 * The table readGpt returns, from the valid copy `source`: its entries (decoded and checked; the
 * findings go to `add`), its geometry, and where the other copy goes. `lba0` is LBA 0 to keep.
 */
function tableOf(source: 'primary' | 'backup', primary: GptCopy, backup: GptCopy, lba0: Uint8Array | undefined, sectorSize: number,
  add: AddProblem): GptTable {
  const p = primary.header, b = backup.header;
  const copy = source === 'primary' ? primary : backup;
  const h = copy.header as GptHeader;
  const bytes = copy.entriesBytes as Uint8Array;
  let entries: GptEntry[] = [];
  try {
    entries = decodeEntries(bytes, h.entryCount, h.entrySize);
  } catch (e) {
    add(source, 'invalid', e instanceof Error ? e.message : String(e));
  }
  checkEntries(entries, h, add);
  const n = entrySectors(h.entryCount, h.entrySize, sectorSize);
  return {
    diskGuid: h.diskGuid,
    firstUsableLba: h.firstUsableLba,
    lastUsableLba: h.lastUsableLba,
    // Rebuilding the primary from the backup puts its entries at LBA 2, as cgpt and sgdisk do.
    primaryEntriesLba: source === 'primary' ? h.partitionEntryLba : (p?.partitionEntryLba ?? 2),
    backupHeaderLba: source === 'primary' ? h.alternateLba : h.myLba,
    backupEntriesLba: source === 'primary' ? (b?.partitionEntryLba ?? h.alternateLba - n) : h.partitionEntryLba,
    entryCount: h.entryCount,
    entrySize: h.entrySize,
    entries,
    entriesBase: bytes,
    lba0,
  };
}

/** readGpt's result for a disk too small to hold a GPT (under 3 sectors): no copy, one 'invalid' problem. */
function tooSmall(read: SectorReader, sectorSize: number, diskSectors: number): GptReadResult {
  checkGeometryArgs(sectorSize, 3); // the sector size is still an argument
  const lba0 = diskSectors > 0 ? read(0, 1) : new Uint8Array(0);
  const none = (lba: number): GptCopy => ({ lba, header: undefined, entriesBytes: undefined, valid: false });
  return {
    sectorSize, diskSectors, mbr: parseMbr(lba0, diskSectors), primary: none(1), backup: none(Math.max(0, diskSectors - 1)), source: undefined, table: undefined,
    problems: [{ place: 'table', severity: 'invalid', message: `the disk has ${diskSectors} sectors of ${sectorSize} bytes: too small for a GPT (at least 3)` }],
  };
}

function readCopy(read: SectorReader, lba: number, sectorSize: number, diskSectors: number, place: GptPlace,
  add: AddProblem): GptCopy {
  const copy: GptCopy = { lba, header: undefined, entriesBytes: undefined, valid: false };
  try {
    copy.header = decodeHeader(read(lba, 1), lba, sectorSize, diskSectors);
  } catch (e) {
    // The header's own refusals only: a reader's failure (an I/O error) is not a bad header.
    if (!(e instanceof FastPatchError) || !e.code.startsWith('GPT_')) throw e;
    add(place, 'invalid', e.message);
    return copy;
  }
  const h = copy.header;
  const length = h.entryCount * h.entrySize;
  const raw = read(h.partitionEntryLba, entrySectors(h.entryCount, h.entrySize, sectorSize));
  if (raw.length < length) {
    add(place, 'invalid', `entry array at LBA ${h.partitionEntryLba}: read ${raw.length} bytes of ${length}`);
    return copy;
  }
  copy.entriesBytes = raw.slice(0, length);
  const crc = crc32(copy.entriesBytes);
  if (crc !== h.entriesCrc32) {
    add(place, 'invalid', `entry array CRC 0x${hex32(crc)} does not match the header's 0x${hex32(h.entriesCrc32)}`);
    return copy;
  }
  copy.valid = true;
  return copy;
}

/** Values some reader refuses though the spec allows them (reference notes §4.7): reported, never written. */
function checkStrict(h: GptHeader, place: GptPlace, add: AddProblem): void {
  if (h.headerSize !== HEADER_SIZE) add(place, 'warning', `header size ${h.headerSize} is not 92 (GRUB computes the CRC over 92 bytes)`);
  if (h.entrySize !== STANDARD_ENTRY_SIZE) add(place, 'warning', `entry size ${h.entrySize} is not 128 (the Linux kernel and cgpt refuse it)`);
  if (h.entryCount !== STANDARD_ENTRY_COUNT) add(place, 'warning', `entry count ${h.entryCount} is not 128 (cgpt refuses it)`);
  if (h.entryCount * h.entrySize < MIN_ENTRY_ARRAY_BYTES) add(place, 'warning', `entry array of ${h.entryCount * h.entrySize} bytes is under 16384 (GRUB refuses it)`);
  // A primary entry array past LBA 2 (`cgpt create -p N` padding) is not reported: every reader
  // (vboot, GRUB, the kernel, sgdisk, libfdisk) finds it through PartitionEntryLBA, and flagging it
  // would make FastPatch refuse to flip slots on such disks for no reader's sake (notes §7 case 23).
}

function checkEntries(entries: GptEntry[], h: GptHeader, add: AddProblem): void {
  const used = entries.filter(isUsed);
  for (const e of used) {
    if (e.firstLba > e.lastLba || e.firstLba < h.firstUsableLba || e.lastLba > h.lastUsableLba) {
      add('table', 'warning', `partition ${e.index}: LBA ${e.firstLba}..${e.lastLba} is not inside the usable range ${h.firstUsableLba}..${h.lastUsableLba}`);
    }
  }
  const sorted = [...used].sort((x, y) => x.firstLba - y.firstLba);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1] as GptEntry, c = sorted[i] as GptEntry;
    if (c.firstLba <= a.lastLba) add('table', 'warning', `partitions ${a.index} and ${c.index} overlap`);
  }
  const seen = new Map<string, number>();
  for (const e of used) {
    const other = seen.get(e.uniqueGuid);
    if (other !== undefined) add('table', 'warning', `partitions ${other} and ${e.index} share unique GUID ${e.uniqueGuid}`);
    seen.set(e.uniqueGuid, e.index);
  }
}

/** A table written for the other sector size is found by its signature at byte 512 or at LBA 8. */
function noteOtherSectorSize(read: SectorReader, lba0: Uint8Array, sectorSize: number, add: AddProblem): void {
  const hasSig = (b: Uint8Array, at: number) => b.length >= at + 8 && [...SIGNATURE].every((c, i) => b[at + i] === c.charCodeAt(0));
  if (sectorSize === 4096 && hasSig(lba0, 512)) add('primary', 'invalid', 'a GPT header is at byte 512: the table was made for 512-byte sectors');
  if (sectorSize === 512 && hasSig(read(8, 1), 0)) add('primary', 'invalid', 'a GPT header is at byte 4096: the table was made for 4096-byte sectors');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One region of writeGptPlan; `role` names match commit.ts's GptRegion (plus 'pmbr'). */
export interface TableRegion {
  role: 'pmbr' | 'primary-header' | 'primary-entries' | 'backup-entries' | 'backup-header';
  lba: number;
  /** A whole number of sectors. */
  bytes: Uint8Array;
}

/**
 * Every sector write that puts `table` on a disk of `diskSectors` sectors: the protective MBR,
 * the primary header and entry array, the backup entry array and header, in that order (the
 * caller chooses the order it writes them in). `table.lba0` is kept as it is when it holds a
 * protective or hybrid MBR of the right size, else a protective MBR is built over it. The entry array CRC and both header CRCs are
 * computed here; HeaderSize is 92 and revision 1.0. Each header is checked as decodeHeader checks
 * it, and the two entry arrays must not overlap. Throws FastPatchError('GPT_CORRUPT'/'GPT_UNSUPPORTED')
 * for geometry no reader would accept, RangeError/TypeError for bad values.
 */
export function writeGptPlan(table: GptTable, sectorSize: number, diskSectors: number): TableRegion[] {
  checkGeometryArgs(sectorSize, diskSectors);
  if (!Number.isInteger(table.entryCount) || !Number.isInteger(table.entrySize) || table.entryCount * table.entrySize > MAX_ENTRY_ARRAY_BYTES) {
    throw new FastPatchError('GPT_CORRUPT', `${table.entryCount} entries of ${table.entrySize} bytes exceed ${MAX_ENTRY_ARRAY_BYTES} bytes`);
  }
  const entries = encodeEntries(table.entries, table.entryCount, table.entrySize, table.entriesBase);
  const n = entrySectors(table.entryCount, table.entrySize, sectorSize);
  const padded = new Uint8Array(n * sectorSize);
  padded.set(entries);
  const common = {
    revision: REVISION, headerSize: HEADER_SIZE, headerCrc32: 0, diskGuid: normalizeGuid(table.diskGuid),
    firstUsableLba: table.firstUsableLba, lastUsableLba: table.lastUsableLba,
    entryCount: table.entryCount, entrySize: table.entrySize, entriesCrc32: crc32(entries),
  };
  const primary = encodeHeader({ ...common, myLba: 1, alternateLba: table.backupHeaderLba, partitionEntryLba: table.primaryEntriesLba }, sectorSize, diskSectors);
  const backup = encodeHeader({ ...common, myLba: table.backupHeaderLba, alternateLba: 1, partitionEntryLba: table.backupEntriesLba }, sectorSize, diskSectors);
  const pEnd = table.primaryEntriesLba + n - 1, bEnd = table.backupEntriesLba + n - 1;
  if (table.primaryEntriesLba <= bEnd && table.backupEntriesLba <= pEnd) {
    throw new FastPatchError('GPT_CORRUPT', `primary (LBA ${table.primaryEntriesLba}..${pEnd}) and backup (LBA ${table.backupEntriesLba}..${bEnd}) entry arrays overlap`);
  }
  // A valid protective or hybrid MBR of the right size is kept byte for byte; anything else is rebuilt.
  const old = table.lba0 !== undefined && table.lba0.length >= sectorSize ? parseMbr(table.lba0, diskSectors) : undefined;
  const lba0 = old !== undefined && old.kind !== 'missing' && old.sizeMatches
    ? (table.lba0 as Uint8Array).slice(0, sectorSize)
    : buildProtectiveMbr(diskSectors, sectorSize, table.lba0);
  return [
    { role: 'pmbr', lba: 0, bytes: lba0 },
    { role: 'primary-header', lba: 1, bytes: primary },
    { role: 'primary-entries', lba: table.primaryEntriesLba, bytes: padded },
    { role: 'backup-entries', lba: table.backupEntriesLba, bytes: padded.slice() },
    { role: 'backup-header', lba: table.backupHeaderLba, bytes: backup },
  ];
}
