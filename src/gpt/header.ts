/**
 * GPT header: decode with every check the strictest reader applies, encode with both CRCs in place
 * (UEFI 2.10 §5.3.2; reference notes §4.2, §4.7; docs/GPT.md, "Header"). No I/O: one sector in,
 * one sector out.
 */
import { FastPatchError } from '../errors.js';
import { crc32 } from './crc32.js';
import { guidFromBytes, guidToBytesInto } from './guid.js';

export const SIGNATURE = 'EFI PART';
/** The only revision vboot and GRUB accept: 1.0. */
export const REVISION = 0x00010000;
/** The header size every writer uses; GRUB computes the CRC over exactly this many bytes. */
export const HEADER_SIZE = 92;
/** Entries and entry size of every table in practice; cgpt requires both, the kernel the size. */
export const STANDARD_ENTRY_COUNT = 128;
export const STANDARD_ENTRY_SIZE = 128;
/** The UEFI minimum for the entry array (GRUB rejects smaller ones). */
export const MIN_ENTRY_ARRAY_BYTES = 16384;
/** Largest entry array decoded, so a corrupt count × size never sizes an allocation (64× the standard). */
export const MAX_ENTRY_ARRAY_BYTES = 1 << 20;

/** Logical sector sizes supported. */
export const SECTOR_SIZES = [512, 4096] as const;

/** A decoded header. LBAs are sector numbers (safe integers); CRCs are unsigned 32-bit numbers. */
export interface GptHeader {
  revision: number;
  headerSize: number;
  /** As stored; encodeHeader recomputes it. */
  headerCrc32: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  /** Uppercase display form. */
  diskGuid: string;
  partitionEntryLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc32: number;
}

/** Throws RangeError unless `sectorSize` is 512 or 4096 and `diskSectors` a plausible sector count. */
export function checkGeometryArgs(sectorSize: number, diskSectors: number): void {
  if (sectorSize !== 512 && sectorSize !== 4096) throw new RangeError(`sectorSize ${sectorSize} must be 512 or 4096`);
  if (!Number.isSafeInteger(diskSectors) || diskSectors < 3) throw new RangeError(`diskSectors ${diskSectors} must be an integer >= 3`);
}

/** Sectors an entry array of `count` × `size` bytes takes. */
export function entrySectors(count: number, size: number, sectorSize: number): number {
  return Math.ceil((count * size) / sectorSize);
}

function corrupt(message: string): FastPatchError {
  return new FastPatchError('GPT_CORRUPT', message);
}

function isPowerOfTwo(x: number): boolean {
  return x > 0 && (x & (x - 1)) === 0;
}

/** CRC of a header's first `headerSize` bytes with the CRC field (16..19) taken as zero. */
export function headerCrc(bytes: Uint8Array, headerSize: number): number {
  const copy = bytes.slice(0, headerSize);
  copy.fill(0, 16, 20);
  return crc32(copy);
}

/**
 * Decodes and checks the header in `sector` (the bytes of LBA `lba`; at least 92 and at most
 * `sectorSize` of them are read) on a disk of `diskSectors` sectors of `sectorSize` bytes.
 * Checks: signature, revision 1.0, 92 <= HeaderSize <= sectorSize, header CRC over HeaderSize bytes
 * with the CRC field zeroed, reserved field 0, MyLBA = `lba`, AlternateLBA inside the disk and not
 * MyLBA, entry size 128·2^n, 1 <= count and count × size <= MAX_ENTRY_ARRAY_BYTES (checked before
 * anything is sized by them), FirstUsable <= LastUsable < diskSectors, and the usable range, both
 * header LBAs and this copy's entry array (inside the disk, past LBA 0) not overlapping.
 * Checks that need the entries or the other copy are readGpt's. Never allocates more than one
 * header. Throws FastPatchError ('GPT_TRUNCATED' for a short buffer, 'GPT_CORRUPT' otherwise) and
 * RangeError for bad arguments.
 */
export function decodeHeader(sector: Uint8Array, lba: number, sectorSize: number, diskSectors: number): GptHeader {
  checkGeometryArgs(sectorSize, diskSectors);
  const at = `header at LBA ${lba}`;
  if (sector.length < HEADER_SIZE) throw new FastPatchError('GPT_TRUNCATED', `${at}: ${sector.length} bytes, a header needs ${HEADER_SIZE}`);
  const v = new DataView(sector.buffer, sector.byteOffset, Math.min(sector.length, sectorSize));
  for (let i = 0; i < 8; i++) {
    if (v.getUint8(i) !== SIGNATURE.charCodeAt(i)) throw corrupt(`${at}: no "EFI PART" signature`);
  }
  const revision = v.getUint32(8, true);
  if (revision !== REVISION) throw corrupt(`${at}: revision 0x${revision.toString(16).padStart(8, '0')}, expected 0x00010000`);
  const headerSize = v.getUint32(12, true);
  if (headerSize < HEADER_SIZE || headerSize > sectorSize) throw corrupt(`${at}: header size ${headerSize} outside ${HEADER_SIZE}..${sectorSize}`);
  if (headerSize > v.byteLength) throw new FastPatchError('GPT_TRUNCATED', `${at}: ${v.byteLength} bytes, header size says ${headerSize}`);
  const headerCrc32 = v.getUint32(16, true);
  const computed = headerCrc(sector, headerSize);
  if (computed !== headerCrc32) {
    throw corrupt(`${at}: header CRC 0x${hex32(headerCrc32)} does not match the computed 0x${hex32(computed)}`);
  }
  if (v.getUint32(20, true) !== 0) throw corrupt(`${at}: reserved field at offset 20 is not zero`);
  const u64 = (offset: number, what: string): number => {
    const x = v.getBigUint64(offset, true);
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`${at}: ${what} ${x} out of range`);
    return Number(x);
  };
  const h: GptHeader = {
    revision,
    headerSize,
    headerCrc32,
    myLba: u64(24, 'MyLBA'),
    alternateLba: u64(32, 'AlternateLBA'),
    firstUsableLba: u64(40, 'FirstUsableLBA'),
    lastUsableLba: u64(48, 'LastUsableLBA'),
    diskGuid: guidFromBytes(sector, 56),
    partitionEntryLba: u64(72, 'PartitionEntryLBA'),
    entryCount: v.getUint32(80, true),
    entrySize: v.getUint32(84, true),
    entriesCrc32: v.getUint32(88, true),
  };
  checkHeaderGeometry(h, lba, sectorSize, diskSectors);
  return h;
}

/** The geometry checks of decodeHeader, also run by encodeHeader on what it is asked to write. */
function checkHeaderGeometry(h: GptHeader, lba: number, sectorSize: number, diskSectors: number): void {
  const at = `header at LBA ${lba}`;
  if (h.myLba !== lba) throw corrupt(`${at}: MyLBA is ${h.myLba}`);
  if (h.alternateLba === h.myLba || h.alternateLba === 0) throw corrupt(`${at}: AlternateLBA ${h.alternateLba} is not another sector`);
  if (h.alternateLba >= diskSectors) throw corrupt(`${at}: AlternateLBA ${h.alternateLba} is beyond the last LBA ${diskSectors - 1}`);
  if (h.entrySize < STANDARD_ENTRY_SIZE || h.entrySize % STANDARD_ENTRY_SIZE !== 0 || !isPowerOfTwo(h.entrySize / STANDARD_ENTRY_SIZE)) {
    throw corrupt(`${at}: entry size ${h.entrySize} is not 128 × 2^n`);
  }
  if (h.entryCount === 0) throw corrupt(`${at}: entry count is 0`);
  // Both are u32, so the product is exact enough to compare against the bound.
  if (h.entryCount * h.entrySize > MAX_ENTRY_ARRAY_BYTES) {
    throw corrupt(`${at}: ${h.entryCount} entries of ${h.entrySize} bytes exceed ${MAX_ENTRY_ARRAY_BYTES} bytes`);
  }
  if (h.firstUsableLba > h.lastUsableLba) throw corrupt(`${at}: FirstUsableLBA ${h.firstUsableLba} > LastUsableLBA ${h.lastUsableLba}`);
  if (h.lastUsableLba >= diskSectors) throw corrupt(`${at}: LastUsableLBA ${h.lastUsableLba} is beyond the last LBA ${diskSectors - 1}`);
  const inUsable = (x: number) => x >= h.firstUsableLba && x <= h.lastUsableLba;
  if (inUsable(h.myLba) || inUsable(h.alternateLba)) throw corrupt(`${at}: a header LBA lies inside the usable range ${h.firstUsableLba}..${h.lastUsableLba}`);
  const n = entrySectors(h.entryCount, h.entrySize, sectorSize);
  const first = h.partitionEntryLba;
  const last = first + n - 1;
  if (first === 0 || last >= diskSectors) throw corrupt(`${at}: entry array at LBA ${first}..${last} is outside LBA 1..${diskSectors - 1}`);
  if (first <= h.lastUsableLba && last >= h.firstUsableLba) {
    throw corrupt(`${at}: entry array at LBA ${first}..${last} overlaps the usable range ${h.firstUsableLba}..${h.lastUsableLba}`);
  }
  if ((h.myLba >= first && h.myLba <= last) || (h.alternateLba >= first && h.alternateLba <= last)) {
    throw corrupt(`${at}: entry array at LBA ${first}..${last} overlaps a header`);
  }
}

/**
 * Encodes `h` as one sector of `sectorSize` bytes (bytes past 92 are zero), with the header CRC
 * recomputed; `h.entriesCrc32` must already be the entry array's CRC, and `h.headerCrc32` is ignored.
 * The result is checked like decodeHeader checks what it reads, for a disk of `diskSectors`.
 * Throws FastPatchError('GPT_UNSUPPORTED') for a HeaderSize other than 92 or a revision other than 1.0
 * (GRUB refuses to write those), FastPatchError('GPT_CORRUPT') for impossible geometry, RangeError for
 * bad arguments.
 */
export function encodeHeader(h: GptHeader, sectorSize: number, diskSectors: number): Uint8Array {
  checkGeometryArgs(sectorSize, diskSectors);
  if (h.headerSize !== HEADER_SIZE) throw new FastPatchError('GPT_UNSUPPORTED', `header size ${h.headerSize}: only ${HEADER_SIZE} is written`);
  if (h.revision !== REVISION) throw new FastPatchError('GPT_UNSUPPORTED', `revision 0x${hex32(h.revision)}: only 0x00010000 is written`);
  for (const [name, x] of [['myLba', h.myLba], ['alternateLba', h.alternateLba], ['firstUsableLba', h.firstUsableLba], ['lastUsableLba', h.lastUsableLba], ['partitionEntryLba', h.partitionEntryLba]] as const) {
    if (!Number.isSafeInteger(x) || x < 0) throw new RangeError(`${name} ${x} is not an LBA`);
  }
  for (const [name, x] of [['entryCount', h.entryCount], ['entrySize', h.entrySize], ['entriesCrc32', h.entriesCrc32]] as const) {
    if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new RangeError(`${name} ${x} is not a u32`);
  }
  checkHeaderGeometry(h, h.myLba, sectorSize, diskSectors);
  const out = new Uint8Array(sectorSize);
  const v = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = SIGNATURE.charCodeAt(i);
  v.setUint32(8, h.revision, true);
  v.setUint32(12, HEADER_SIZE, true);
  v.setBigUint64(24, BigInt(h.myLba), true);
  v.setBigUint64(32, BigInt(h.alternateLba), true);
  v.setBigUint64(40, BigInt(h.firstUsableLba), true);
  v.setBigUint64(48, BigInt(h.lastUsableLba), true);
  guidToBytesInto(h.diskGuid, out, 56);
  v.setBigUint64(72, BigInt(h.partitionEntryLba), true);
  v.setUint32(80, h.entryCount, true);
  v.setUint32(84, h.entrySize, true);
  v.setUint32(88, h.entriesCrc32, true);
  v.setUint32(16, headerCrc(out, HEADER_SIZE), true);
  return out;
}

export function hex32(x: number): string {
  return (x >>> 0).toString(16).padStart(8, '0');
}
