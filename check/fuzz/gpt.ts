/**
 * GPT family: small Flatcar-layout disk images (createFlatcarDisk) with mutated protective MBR,
 * headers and entry arrays, with and without the CRCs fixed up (so the deeper checks are reached),
 * read as `gpt show` reads them and changed as `gpt set-next 4` changes them.
 */
import { promises as fsp } from 'node:fs';
import { crc32 } from '../../src/gpt/crc32.js';
import { PARTITION_TYPES } from '../../src/gpt/guid.js';
import { guidToBytesInto } from '../../src/gpt/guid.js';
import type { Rng } from './rng.js';

export const SECTOR = 512;
export const DISK_SIZE = 32 * 1024 * 1024;
/** Bytes kept of each end of the template: LBA 0-33 and the last 33 LBAs, with room to spare. */
export const EDGE = 64 * 1024;

export interface GptTemplate {
  head: Uint8Array;
  tail: Uint8Array;
}

export interface GptMutation {
  head: Uint8Array;
  tail: Uint8Array;
  /** Disk size in bytes. */
  size: number;
  what: string[];
}

const HEADER_FIELDS: [offset: number, width: 4 | 8, name: string][] = [
  [8, 4, 'Revision'], [12, 4, 'HeaderSize'], [20, 4, 'Reserved'], [24, 8, 'MyLBA'], [32, 8, 'AlternateLBA'],
  [40, 8, 'FirstUsableLBA'], [48, 8, 'LastUsableLBA'], [72, 8, 'PartitionEntryLBA'], [80, 4, 'NumberOfPartitionEntries'],
  [84, 4, 'SizeOfPartitionEntry'], [88, 4, 'PartitionEntryArrayCRC32'],
];

function setUint(bytes: Uint8Array, at: number, width: number, v: bigint): void {
  for (let b = 0; b < width; b++) bytes[at + b] = Number((BigInt.asUintN(64, v) >> BigInt(8 * b)) & 0xffn);
}

function getUint(bytes: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let b = width - 1; b >= 0; b--) v = (v << 8n) | BigInt(bytes[at + b] ?? 0);
  return v;
}

/** Recomputes the entry array CRC and then the header CRC of the header at `hdr` (offset into `bytes`). */
function fixCrcs(head: Uint8Array, tail: Uint8Array, size: number, which: 'primary' | 'backup'): void {
  const lastLba = Math.floor(size / SECTOR) - 1;
  const tailStartLba = lastLba + 1 - EDGE / SECTOR;
  const sectorAt = (lba: number): [Uint8Array, number] | undefined => {
    if (lba >= 0 && lba < EDGE / SECTOR) return [head, lba * SECTOR];
    if (lba >= tailStartLba && lba <= lastLba) return [tail, (lba - tailStartLba) * SECTOR];
    return undefined;
  };
  const hdrAt = sectorAt(which === 'primary' ? 1 : lastLba);
  if (!hdrAt) return;
  const [buf, at] = hdrAt;
  const hdr = buf.subarray(at, at + SECTOR);
  const entryLba = Number(getUint(hdr, 72, 8));
  const count = Number(getUint(hdr, 80, 4));
  const esize = Number(getUint(hdr, 84, 4));
  const arr = Number.isSafeInteger(entryLba) ? sectorAt(entryLba) : undefined;
  if (arr && count * esize <= 1 << 20) {
    const [abuf, aat] = arr;
    if (aat + count * esize <= abuf.length) setUint(hdr, 88, 4, BigInt(crc32(abuf.subarray(aat, aat + count * esize))));
  }
  const hsize = Number(getUint(hdr, 12, 4));
  const n = hsize >= 92 && hsize <= SECTOR ? hsize : 92;
  const copy = new Uint8Array(hdr.subarray(0, n));
  copy.fill(0, 16, 20);
  setUint(hdr, 16, 4, BigInt(crc32(copy)));
}

export function mutateGpt(rng: Rng, t: GptTemplate): GptMutation {
  const head = new Uint8Array(t.head);
  const tail = new Uint8Array(t.tail);
  let size = DISK_SIZE;
  const what: string[] = [];
  // Offsets: primary header at head[512], primary entries at head[1024]; backup header in the
  // tail's last sector, backup entries in the 32 sectors before it.
  const pHdr = SECTOR, pEnt = 2 * SECTOR, bHdr = EDGE - SECTOR, bEnt = EDGE - 33 * SECTOR;
  const copies = rng.chance(0.3) ? ['both'] : [rng.pick(['primary', 'backup'])];
  const targets = copies[0] === 'both' ? [[head, pHdr, pEnt], [tail, bHdr, bEnt]] as const : copies[0] === 'primary' ? [[head, pHdr, pEnt]] as const : [[tail, bHdr, bEnt]] as const;
  const n = rng.chance(0.6) ? 1 : rng.between(2, 3);
  // Identical random choices for both copies: draw once, apply to each.
  for (let i = 0; i < n; i++) {
    const kind = rng.below(9);
    if (kind === 0) {
      const [o, w, name] = rng.pick(HEADER_FIELDS);
      const v = rng.pick([0n, 1n, 2n, 33n, 34n, 92n, 93n, 128n, 129n, 511n, 512n, 513n, 0xffffffffn, 1n << 32n, 1n << 53n, (1n << 64n) - 1n,
        BigInt(Math.floor(size / SECTOR) - 1), BigInt(Math.floor(size / SECTOR)), BigInt(Math.floor(size / SECTOR) - 34), BigInt(rng.below(Math.floor(size / SECTOR)))]);
      for (const [buf, hdr] of targets) setUint(buf, hdr + o, w, v);
      what.push(`${copies[0]} ${name}=${v}`);
    } else if (kind === 1) {
      const at = rng.below(92), bit = rng.below(8);
      for (const [buf, hdr] of targets) buf[hdr + at]! ^= 1 << bit;
      what.push(`${copies[0]} header flip ${at}.${bit}`);
    } else if (kind <= 4) {
      // An entry field: one of the 9 Flatcar partitions (index 0..8) mostly, sometimes any.
      const idx = rng.chance(0.8) ? rng.below(9) : rng.below(128);
      const f = rng.below(6);
      let desc: string;
      const type = rng.pick([PARTITION_TYPES.UNUSED, PARTITION_TYPES.COREOS_USR, PARTITION_TYPES.CHROMEOS_KERNEL, '01234567-89AB-CDEF-0123-456789ABCDEF']);
      const lba = rng.pick([0n, 1n, 33n, 34n, 2048n, BigInt(Math.floor(size / SECTOR) - 34), BigInt(Math.floor(size / SECTOR)), 1n << 53n, (1n << 64n) - 1n, BigInt(rng.below(Math.floor(size / SECTOR)))]);
      const attrs = rng.pick([0n, (1n << 64n) - 1n, 0x01ff_0000_0000_0000n, BigInt(rng.next32()) << 32n, 0x0100_0000_0000_0000n | (BigInt(rng.below(16)) << 48n) | (BigInt(rng.below(16)) << 52n)]);
      const other = rng.below(9);
      for (const [buf, , ent] of targets) {
        const at = ent + idx * 128;
        if (f === 0) guidToBytesInto(type, buf, at);
        else if (f === 1) buf.copyWithin(at + 16, ent + other * 128 + 16, ent + other * 128 + 32); // duplicate unique GUID
        else if (f === 2) setUint(buf, at + 32, 8, lba);
        else if (f === 3) setUint(buf, at + 40, 8, lba);
        else if (f === 4) setUint(buf, at + 48, 8, attrs);
        else for (let u = 0; u < 36; u++) setUint(buf, at + 56 + 2 * u, 2, BigInt(rng.pick([0xd800, 0xdfff, 0x41, 0, 0xffff])));
      }
      desc = ['type', 'unique GUID copied', 'first LBA', 'last LBA', 'attributes', 'name'][f]!;
      what.push(`${copies[0]} entry ${idx + 1} ${desc}${f === 0 ? `=${type}` : f === 2 || f === 3 ? `=${lba}` : f === 4 ? `=0x${attrs.toString(16)}` : ''}`);
    } else if (kind === 5) {
      const at = rng.below(4 * 128), bit = rng.below(8);
      for (const [buf, , ent] of targets) buf[ent + at]! ^= 1 << bit;
      what.push(`${copies[0]} entry flip ${at}.${bit}`);
    } else if (kind === 6) {
      const f = rng.below(4);
      if (f === 0) { head[510] = 0; what.push('MBR signature cleared'); }
      else if (f === 1) { head[446 + 4] = rng.pick([0, 0x83, 0x07]); what.push(`MBR type ${head[450]}`); }
      else if (f === 2) { setUint(head, 446 + 12, 4, rng.pick([0n, 1n, 0xffffffffn, BigInt(Math.floor(size / SECTOR))])); what.push('MBR size field'); }
      else { head.fill(0, 0, 512); what.push('MBR wiped'); }
    } else if (kind === 7) {
      const f = rng.below(3);
      if (f === 0) { head.fill(0, pHdr, pHdr + SECTOR); what.push('primary header wiped'); }
      else if (f === 1) { tail.fill(0, bHdr, bHdr + SECTOR); what.push('backup header wiped'); }
      else { tail.set(head.subarray(pHdr, pHdr + SECTOR), bHdr); what.push('primary header copied over backup'); }
    } else {
      // Disk size changed: the backup is no longer (or not only) at the last LBA.
      size = rng.pick([DISK_SIZE - SECTOR, DISK_SIZE + SECTOR, DISK_SIZE - 4096, DISK_SIZE + 7 * SECTOR, DISK_SIZE - 40 * SECTOR, EDGE + 3 * SECTOR, 3 * SECTOR, 2 * SECTOR, 1000, 0]);
      what.push(`disk size ${size}`);
    }
  }
  const fix = rng.below(3); // 0: none, 1: the mutated copies, 2: both
  if (fix > 0) {
    const which = fix === 2 || copies[0] === 'both' ? ['primary', 'backup'] as const : [copies[0] as 'primary' | 'backup'];
    for (const w of which) fixCrcs(head, tail, DISK_SIZE, w);
    what.push(`CRCs fixed (${which.join(', ')})`);
  }
  return { head, tail, size, what };
}

/** Writes a disk image of `size` bytes holding `head` at 0 and `tail` at the template's end (sparse elsewhere). */
export async function writeDisk(path: string, g: GptMutation): Promise<void> {
  const f = await fsp.open(path, 'w');
  try {
    await f.truncate(g.size);
    await f.write(g.head.subarray(0, Math.min(g.head.length, g.size)), 0, Math.min(g.head.length, g.size), 0);
    // The tail stays where the template had it (DISK_SIZE - EDGE), cut at the new size.
    const at = DISK_SIZE - EDGE;
    if (at < g.size) await f.write(g.tail, 0, Math.min(g.tail.length, g.size - at), at);
    await f.truncate(g.size);
  } finally {
    await f.close();
  }
}
