/**
 * GPT partition entries and whole tables: both copies read and cross-checked, and the sector
 * writes for a table (UEFI 2.10 §5.3; reference notes §4.3, §4.7, §5.3; docs/GPT.md). No I/O:
 * the caller supplies a sector reader and performs the writes, in the order it chooses.
 */
import { FastPatchError } from '../errors.js';
import { crc32 } from './crc32.js';
import { guidFromBytes, guidToBytesInto, normalizeGuid, PARTITION_TYPES } from './guid.js';
import {
  type GptHeader, HEADER_SIZE, MAX_ENTRY_ARRAY_BYTES, MIN_ENTRY_ARRAY_BYTES, REVISION, SIGNATURE, STANDARD_ENTRY_COUNT, STANDARD_ENTRY_SIZE,
  checkGeometryArgs, decodeHeader, encodeHeader, entrySectors, hex32,
} from './header.js';
import { buildProtectiveMbr, type MbrInfo, parseMbr } from './mbr.js';

/** UTF-16 code units in a partition name. */
export const NAME_UNITS = 36;
const ENTRY_FIXED = 128;
const U64_MAX = (1n << 64n) - 1n;

/**
 * One partition entry. Shaped like attributes.ts's SlotEntry (1-based `index`, `label`), so the
 * slot functions take these entries as they are and keep the other fields.
 */
export interface GptEntry {
  /** Partition number, 1-based as in `cgpt -i N`, `sgdisk -i N` and `sdaN`: array entry index − 1. */
  index: number;
  /** Uppercase display form; all zero for an unused entry. */
  typeGuid: string;
  uniqueGuid: string;
  firstLba: number;
  /** Inclusive. */
  lastLba: number;
  /** All 64 bits as stored; bits 48-56 are priority, tries, successful on slot types. */
  attributes: bigint;
  /** PartitionName: up to 36 UTF-16 code units, read up to the first NUL (lone surrogates kept as they are). */
  label: string;
}

/** True unless the entry's type GUID is all zero. */
export function isUsed(e: GptEntry): boolean {
  return e.typeGuid !== PARTITION_TYPES.UNUSED;
}

/**
 * Decodes the `count` entries of `size` bytes at the start of `bytes` (all of them, used or not).
 * Throws FastPatchError('GPT_TRUNCATED') if `bytes` is shorter than count × size, FastPatchError('GPT_CORRUPT')
 * for a used entry whose LBAs are beyond 2^53, RangeError for a bad size.
 */
export function decodeEntries(bytes: Uint8Array, count: number, size: number): GptEntry[] {
  if (!Number.isInteger(size) || size < ENTRY_FIXED || size % ENTRY_FIXED !== 0) throw new RangeError(`entry size ${size} is not a multiple of 128`);
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`entry count ${count} is not a count`);
  if (count * size > bytes.length) throw new FastPatchError('GPT_TRUNCATED', `entry array has ${bytes.length} bytes, ${count} entries of ${size} need ${count * size}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: GptEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * size;
    const typeGuid = guidFromBytes(bytes, at);
    const lba = (offset: number, what: string): number => {
      const x = v.getBigUint64(at + offset, true);
      if (x <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(x);
      if (typeGuid === PARTITION_TYPES.UNUSED) return -1; // garbage in an unused entry: kept by encodeEntries' base
      throw new FastPatchError('GPT_CORRUPT', `partition ${i + 1}: ${what} ${x} out of range`);
    };
    let label = '';
    for (let u = 0; u < NAME_UNITS; u++) {
      const unit = v.getUint16(at + 56 + 2 * u, true);
      if (unit === 0) break;
      label += String.fromCharCode(unit);
    }
    out.push({
      index: i + 1,
      typeGuid,
      uniqueGuid: guidFromBytes(bytes, at + 16),
      firstLba: lba(32, 'StartingLBA'),
      lastLba: lba(40, 'EndingLBA'),
      attributes: v.getBigUint64(at + 48, true),
      label,
    });
  }
  return out;
}

function sameEntry(a: GptEntry, b: GptEntry): boolean {
  return a.typeGuid === b.typeGuid.toUpperCase() && a.uniqueGuid === b.uniqueGuid.toUpperCase() && a.firstLba === b.firstLba
    && a.lastLba === b.lastLba && a.attributes === b.attributes && a.label === b.label;
}

/**
 * Encodes `entries` (each placed by its partition number `index`) into a new array of `count` × `size` bytes.
 * With `base` (the array as read), the result starts as a copy of it, and only entries that differ
 * from their decoded base are rewritten, so unchanged entries, reserved bytes past 128 and
 * anything after a name's NUL stay byte-identical. Without it, missing entries are zero.
 * Throws RangeError for an index outside 1..count, a label over 36 UTF-16 units, an attribute
 * outside 0..2^64−1, a bad LBA or GUID (TypeError).
 */
export function encodeEntries(entries: readonly GptEntry[], count: number, size: number, base?: Uint8Array): Uint8Array {
  if (!Number.isInteger(size) || size < ENTRY_FIXED || size % ENTRY_FIXED !== 0) throw new RangeError(`entry size ${size} is not a multiple of 128`);
  if (!Number.isInteger(count) || count < 0 || count * size > MAX_ENTRY_ARRAY_BYTES) {
    throw new RangeError(`${count} entries of ${size} bytes exceed ${MAX_ENTRY_ARRAY_BYTES} bytes`);
  }
  const out = new Uint8Array(count * size);
  let old: GptEntry[] | undefined;
  if (base !== undefined) {
    if (base.length < out.length) throw new RangeError(`base has ${base.length} bytes, the array needs ${out.length}`);
    out.set(base.subarray(0, out.length));
    old = decodeEntries(base, count, size);
  }
  const v = new DataView(out.buffer);
  for (const e of entries) {
    if (!Number.isInteger(e.index) || e.index < 1 || e.index > count) throw new RangeError(`partition number ${e.index} outside 1..${count}`);
    const prev = old?.[e.index - 1];
    if (prev !== undefined && sameEntry(prev, e)) continue;
    if (e.label.length > NAME_UNITS) throw new RangeError(`partition ${e.index}: label "${e.label}" is longer than ${NAME_UNITS} UTF-16 units`);
    if (e.attributes < 0n || e.attributes > U64_MAX) throw new RangeError(`partition ${e.index}: attributes ${e.attributes} not a u64`);
    for (const x of [e.firstLba, e.lastLba]) if (!Number.isSafeInteger(x) || x < 0) throw new RangeError(`partition ${e.index}: LBA ${x} is not an LBA`);
    const at = (e.index - 1) * size;
    out.fill(0, at, at + ENTRY_FIXED);
    guidToBytesInto(normalizeGuid(e.typeGuid), out, at);
    guidToBytesInto(normalizeGuid(e.uniqueGuid), out, at + 16);
    v.setBigUint64(at + 32, BigInt(e.firstLba), true);
    v.setBigUint64(at + 40, BigInt(e.lastLba), true);
    v.setBigUint64(at + 48, e.attributes, true);
    for (let u = 0; u < e.label.length; u++) v.setUint16(at + 56 + 2 * u, e.label.charCodeAt(u), true);
  }
  return out;
}

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
    table = {
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
      lba0: mbr.kind === 'missing' ? undefined : lba0.slice(0, sectorSize),
    };
  }
  problems.sort((x, y) => (x.severity === y.severity ? 0 : x.severity === 'invalid' ? -1 : 1));
  return { sectorSize, diskSectors, mbr, primary, backup, source, table, problems };
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
  add: (place: GptPlace, severity: GptProblem['severity'], message: string) => void): GptCopy {
  const copy: GptCopy = { lba, header: undefined, entriesBytes: undefined, valid: false };
  try {
    copy.header = decodeHeader(read(lba, 1), lba, sectorSize, diskSectors);
  } catch (e) {
    if (!(e instanceof FastPatchError)) throw e;
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
function checkStrict(h: GptHeader, place: GptPlace,
  add: (place: GptPlace, severity: GptProblem['severity'], message: string) => void): void {
  if (h.headerSize !== HEADER_SIZE) add(place, 'warning', `header size ${h.headerSize} is not 92 (GRUB computes the CRC over 92 bytes)`);
  if (h.entrySize !== STANDARD_ENTRY_SIZE) add(place, 'warning', `entry size ${h.entrySize} is not 128 (the Linux kernel and cgpt refuse it)`);
  if (h.entryCount !== STANDARD_ENTRY_COUNT) add(place, 'warning', `entry count ${h.entryCount} is not 128 (cgpt refuses it)`);
  if (h.entryCount * h.entrySize < MIN_ENTRY_ARRAY_BYTES) add(place, 'warning', `entry array of ${h.entryCount * h.entrySize} bytes is under 16384 (GRUB refuses it)`);
  // A primary entry array past LBA 2 (`cgpt create -p N` padding) is not reported: every reader
  // (vboot, GRUB, the kernel, sgdisk, libfdisk) finds it through PartitionEntryLBA, and flagging it
  // would make FastPatch refuse to flip slots on such disks for no reader's sake (notes §7 case 23).
}

function checkEntries(entries: GptEntry[], h: GptHeader, add: (place: GptPlace, severity: GptProblem['severity'], message: string) => void): void {
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
function noteOtherSectorSize(read: SectorReader, lba0: Uint8Array, sectorSize: number,
  add: (place: GptPlace, severity: GptProblem['severity'], message: string) => void): void {
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
