/**
 * GPT partition entries: the entry array's codec (UEFI 2.10 §5.3.3; reference notes §4.3;
 * docs/GPT.md, "Partition entry"). No I/O: bytes in, entries out, and back.
 */
import { FastPatchError } from '../errors.js';
import { guidFromBytes, guidToBytesInto, normalizeGuid, PARTITION_TYPES } from './guid.js';
import { MAX_ENTRY_ARRAY_BYTES } from './header.js';

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
