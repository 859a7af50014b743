import { describe, expect, it } from 'vitest';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32, crc32Update } from '../../dist/src/gpt/crc32.js';
import { guidFromBytes, guidToBytes, normalizeGuid, PARTITION_TYPES, FLATCAR_SLOT_GUIDS } from '../../dist/src/gpt/guid.js';
import { buildProtectiveMbr, parseMbr } from '../../dist/src/gpt/mbr.js';
import { decodeHeader, encodeHeader, headerCrc, MAX_ENTRY_ARRAY_BYTES, type GptHeader } from '../../dist/src/gpt/header.js';
import { decodeEntries, encodeEntries, isUsed, readGpt, writeGptPlan, type GptEntry, type GptTable } from '../../dist/src/gpt/table.js';
import { FastPatchError } from '../../dist/src/errors.js';

const enc = new TextEncoder();
const DISK_GUID = '00000000-0000-0000-0000-000000000001';

/** Partition `index` (1-based). */
function entry(index: number, typeGuid: string, uniqueGuid: string, firstLba: number, lastLba: number, label: string, attributes = 0n): GptEntry {
  return { index, typeGuid, uniqueGuid, firstLba, lastLba, label, attributes };
}

/** A Flatcar-like table for a disk of `diskSectors` sectors. */
function flatcarTable(sectorSize: number, diskSectors: number, count = 128, size = 128): GptTable {
  const n = Math.ceil((count * size) / sectorSize);
  const mib = (1 << 20) / sectorSize;
  return {
    diskGuid: DISK_GUID,
    firstUsableLba: 2 + n,
    lastUsableLba: diskSectors - 2 - n,
    primaryEntriesLba: 2,
    backupHeaderLba: diskSectors - 1,
    backupEntriesLba: diskSectors - 1 - n,
    entryCount: count,
    entrySize: size,
    entries: [
      entry(1, PARTITION_TYPES.EFI_SYSTEM, '11111111-2222-4333-8444-555555555555', mib, 2 * mib - 1, 'EFI-SYSTEM'),
      entry(3, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_A, 2 * mib, 3 * mib - 1, 'USR-A', 0x0101000000000000n),
      entry(4, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_B, 3 * mib, 4 * mib - 1, 'USR-B'),
      entry(9, PARTITION_TYPES.COREOS_ROOT, 'ABCDEF01-2345-6789-ABCD-EF0123456789', 4 * mib, 5 * mib - 1, 'ROOT'),
    ],
  };
}

function makeDisk(sectorSize: number, diskSectors: number, table = flatcarTable(sectorSize, diskSectors)): Uint8Array {
  const disk = new Uint8Array(sectorSize * diskSectors);
  for (const w of writeGptPlan(table, sectorSize, diskSectors)) disk.set(w.bytes, w.lba * sectorSize);
  return disk;
}

/** Whole-disk comparison; toEqual on megabytes is far too slow. */
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

const reader = (disk: Uint8Array, ss: number) => (lba: number, count: number) => disk.slice(lba * ss, (lba + count) * ss);

/** Edits the header at `lba` and recomputes its CRC (over `crcSize` bytes) so only the edited check fails. */
function patchHeader(disk: Uint8Array, ss: number, lba: number, edit: (v: DataView) => void, crcSize = 92): void {
  const sector = disk.subarray(lba * ss, (lba + 1) * ss);
  const v = new DataView(sector.buffer, sector.byteOffset, ss);
  edit(v);
  v.setUint32(16, headerCrc(sector, crcSize), true);
}

const SIZES = [
  { ss: 512, sectors: 16384 },
  { ss: 4096, sectors: 2048 },
];

describe('crc32', () => {
  it('matches the published check values', () => {
    expect(crc32(enc.encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(enc.encode('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
    expect(crc32(new Uint8Array(32))).toBe(0x190a55ad);
  });
  it('agrees with zlib.crc32, at every split point and byteOffset', () => {
    const data = new Uint8Array(300);
    for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
    const whole = crc32(data);
    expect(whole).toBe(zlibCrc32(data));
    for (let cut = 0; cut <= data.length; cut++) expect(crc32Update(crc32Update(0, data.subarray(0, cut)), data.subarray(cut))).toBe(whole);
    const shifted = new Uint8Array(data.length + 3);
    shifted.set(data, 3);
    expect(crc32(shifted.subarray(3))).toBe(whole);
  });
});

describe('GUIDs', () => {
  it('stores the first three fields little-endian (the ChromeOS kernel type as seen with xxd)', () => {
    expect([...guidToBytes(PARTITION_TYPES.CHROMEOS_KERNEL)]).toEqual([0x5d, 0x2a, 0x3a, 0xfe, 0x32, 0x4f, 0xa7, 0x41, 0xb7, 0x25, 0xac, 0xcc, 0x32, 0x85, 0xa3, 0x09]);
    expect(guidFromBytes(guidToBytes(PARTITION_TYPES.LINUX_FILESYSTEM))).toBe('0FC63DAF-8483-4772-8E79-3D69D8477DE4');
  });
  it('round-trips every constant, either case in, uppercase out', () => {
    for (const g of [...Object.values(PARTITION_TYPES), ...Object.values(FLATCAR_SLOT_GUIDS)]) {
      expect(guidFromBytes(guidToBytes(g.toLowerCase()))).toBe(g);
    }
    expect(normalizeGuid('7130c94a-213a-4e5a-8e26-6cce9662f132')).toBe(FLATCAR_SLOT_GUIDS.USR_A);
    const buf = new Uint8Array(20);
    buf.set(guidToBytes(FLATCAR_SLOT_GUIDS.USR_B), 4);
    expect(guidFromBytes(buf, 4)).toBe(FLATCAR_SLOT_GUIDS.USR_B);
  });
  it('refuses malformed GUIDs and short buffers', () => {
    for (const bad of ['', '7130c94a213a4e5a8e266cce9662f132', '7130c94a-213a-4e5a-8e26-6cce9662f13g', `{${FLATCAR_SLOT_GUIDS.USR_A}}`]) {
      expect(() => guidToBytes(bad)).toThrow(TypeError);
    }
    expect(() => guidFromBytes(new Uint8Array(15))).toThrow(RangeError);
  });
});

describe('protective MBR', () => {
  it('builds and recognizes a protective MBR, with the size capped at 0xFFFFFFFF', () => {
    const m = buildProtectiveMbr(131072, 512);
    expect(m.length).toBe(512);
    expect([...m.subarray(446, 462)]).toEqual([0, 0, 2, 0, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0x01, 0]);
    expect([m[510], m[511]]).toEqual([0x55, 0xaa]);
    expect(parseMbr(m, 131072)).toMatchObject({ kind: 'protective', sizeMatches: true });
    expect(parseMbr(m, 131073).sizeMatches).toBe(false);
    const big = buildProtectiveMbr(2 ** 40, 4096);
    expect(big.length).toBe(4096);
    expect(new DataView(big.buffer).getUint32(458, true)).toBe(0xffffffff);
    expect(parseMbr(big, 2 ** 40)).toMatchObject({ kind: 'protective', sizeMatches: true });
  });
  it('tells hybrid from missing', () => {
    const m = buildProtectiveMbr(1000, 512);
    const hybrid = m.slice();
    hybrid.set([0x80, 0, 0, 0, 0x83, 0, 0, 0, 34, 0, 0, 0, 100, 0, 0, 0], 462);
    expect(parseMbr(hybrid, 1000).kind).toBe('hybrid');
    const noSig = m.slice();
    noSig[511] = 0;
    expect(parseMbr(noSig, 1000)).toMatchObject({ kind: 'missing' });
    expect(parseMbr(new Uint8Array(512), 1000).kind).toBe('missing');
    const wrongStart = m.slice();
    wrongStart[454] = 2;
    expect(parseMbr(wrongStart, 1000).reason).toMatch(/0xEE starting at LBA 1/);
    expect(parseMbr(m.subarray(0, 511), 1000).kind).toBe('missing');
  });
  it('keeps the boot code of an existing LBA 0', () => {
    const base = new Uint8Array(512).fill(0x90);
    const m = buildProtectiveMbr(1000, 512, base);
    expect(m.subarray(0, 446).every((b) => b === 0x90)).toBe(true);
    expect(m.subarray(462, 510).every((b) => b === 0)).toBe(true);
  });
});

describe('header', () => {
  for (const { ss, sectors } of SIZES) {
    const n = (128 * 128) / ss;
    const h: GptHeader = {
      revision: 0x10000, headerSize: 92, headerCrc32: 0, myLba: 1, alternateLba: sectors - 1, firstUsableLba: 2 + n,
      lastUsableLba: sectors - 2 - n, diskGuid: 'C0FFEE00-1234-5678-9ABC-DEF012345678', partitionEntryLba: 2,
      entryCount: 128, entrySize: 128, entriesCrc32: 0xdeadbeef,
    };
    it(`round-trips on ${ss}-byte sectors`, () => {
      const bytes = encodeHeader(h, ss, sectors);
      expect(bytes.length).toBe(ss);
      const back = decodeHeader(bytes, 1, ss, sectors);
      expect(back).toEqual({ ...h, headerCrc32: back.headerCrc32 });
      expect(back.headerCrc32).toBe(headerCrc(bytes, 92));
      const backup = { ...h, myLba: sectors - 1, alternateLba: 1, partitionEntryLba: sectors - 1 - n };
      expect(decodeHeader(encodeHeader(backup, ss, sectors), sectors - 1, ss, sectors).partitionEntryLba).toBe(sectors - 1 - n);
      // The header through a view at an odd byteOffset decodes the same.
      const shifted = new Uint8Array(ss + 5);
      shifted.set(bytes, 5);
      expect(decodeHeader(shifted.subarray(5), 1, ss, sectors)).toEqual(back);
    });
    it(`refuses truncation at every byte on ${ss}-byte sectors`, () => {
      const bytes = encodeHeader(h, ss, sectors);
      for (let k = 0; k < 92; k++) {
        let err: unknown;
        try { decodeHeader(bytes.subarray(0, k), 1, ss, sectors); } catch (e) { err = e; }
        expect(err).toBeInstanceOf(FastPatchError);
        expect((err as FastPatchError).code).toBe('GPT_TRUNCATED');
      }
      for (let k = 92; k <= ss; k += k < 200 ? 1 : 97) expect(decodeHeader(bytes.subarray(0, k), 1, ss, sectors).myLba).toBe(1);
    });
  }
  it('refuses to write a header size other than 92 or impossible geometry', () => {
    const h: GptHeader = {
      revision: 0x10000, headerSize: 96, headerCrc32: 0, myLba: 1, alternateLba: 999, firstUsableLba: 34, lastUsableLba: 966,
      diskGuid: DISK_GUID, partitionEntryLba: 2, entryCount: 128, entrySize: 128, entriesCrc32: 0,
    };
    expect(() => encodeHeader(h, 512, 1000)).toThrow(expect.objectContaining({ code: 'GPT_UNSUPPORTED' }));
    expect(() => encodeHeader({ ...h, headerSize: 92, lastUsableLba: 1000 }, 512, 1000)).toThrow(/LastUsableLBA 1000/);
    expect(() => encodeHeader({ ...h, headerSize: 92, firstUsableLba: 33 }, 512, 1000)).toThrow(/overlaps the usable range/);
    expect(() => encodeHeader({ ...h, headerSize: 92 }, 1024, 1000)).toThrow(RangeError);
  });
  it('never throws anything but FastPatchError for random damage', () => {
    const h = encodeHeader({
      revision: 0x10000, headerSize: 92, headerCrc32: 0, myLba: 1, alternateLba: 999, firstUsableLba: 34, lastUsableLba: 966,
      diskGuid: DISK_GUID, partitionEntryLba: 2, entryCount: 128, entrySize: 128, entriesCrc32: 0,
    }, 512, 1000);
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let i = 0; i < 2000; i++) {
      const b = h.slice();
      b[rnd() % 92] = rnd() & 0xff;
      // Fix the CRC half of the time so the field checks are reached.
      if (i % 2 === 0) new DataView(b.buffer).setUint32(16, headerCrc(b, Math.min(Math.max(new DataView(b.buffer).getUint32(12, true), 92), 512)), true);
      try { decodeHeader(b, 1, 512, 1000); } catch (e) { expect(e).toBeInstanceOf(FastPatchError); }
    }
  });
});

describe('entries', () => {
  it('round-trips every attribute bit, 36-unit and non-ASCII names', () => {
    const list = [
      entry(1, PARTITION_TYPES.CHROMEOS_KERNEL, FLATCAR_SLOT_GUIDS.USR_A, 34, 99, 'KERN-A', 0xffffffffffffffffn),
      entry(2, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_B, 100, 199, 'x'.repeat(36), 0x8000000000000001n),
      entry(3, PARTITION_TYPES.LINUX_FILESYSTEM, 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE', 200, 299, 'Données \u{1F600} \uD800', 0x0062000000000000n),
    ];
    const bytes = encodeEntries(list, 4, 128);
    expect(bytes.length).toBe(512);
    // P2 T6 S0 is stored as bytes 00 00 00 00 00 00 62 00 at entry offset 48 (reference notes §1.1).
    expect([...bytes.subarray(256 + 48, 256 + 56)]).toEqual([0, 0, 0, 0, 0, 0, 0x62, 0]);
    const back = decodeEntries(bytes, 4, 128);
    expect(back.slice(0, 3)).toEqual(list);
    expect(isUsed(back[3]!)).toBe(false);
    expect(() => encodeEntries([entry(1, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_A, 1, 2, 'x'.repeat(37))], 4, 128)).toThrow(RangeError);
    expect(() => encodeEntries([entry(5, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_A, 1, 2, 'x')], 4, 128)).toThrow(RangeError);
    expect(() => encodeEntries([entry(0, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_A, 1, 2, 'x')], 4, 128)).toThrow(RangeError);
    expect(() => encodeEntries([entry(1, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_A, 1, 2, 'x', 1n << 64n)], 4, 128)).toThrow(RangeError);
    expect(() => decodeEntries(bytes.subarray(0, 511), 4, 128)).toThrow(expect.objectContaining({ code: 'GPT_TRUNCATED' }));
  });
  it('keeps unchanged entries, reserved bytes and bytes after a name byte for byte', () => {
    const base = encodeEntries([
      entry(1, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_A, 34, 99, 'USR-A'),
      entry(2, PARTITION_TYPES.COREOS_USR, FLATCAR_SLOT_GUIDS.USR_B, 100, 199, 'USR-B'),
    ], 4, 256);
    base.fill(0x5a, 128, 256); // reserved tail of entry 1
    base[256 + 56 + 20] = 0x41; // junk after the NUL of entry 2's name
    base[3 * 256 + 40] = 0xff; // junk in an unused entry
    base[3 * 256 + 47] = 0xff;
    const list = decodeEntries(base, 4, 256);
    expect(encodeEntries(list, 4, 256, base)).toEqual(base);
    const changed = list.map((e) => (e.index === 2 ? { ...e, attributes: e.attributes | (1n << 56n) } : e));
    const out = encodeEntries(changed, 4, 256, base);
    expect(out[256 + 55]).toBe(1);
    for (let i = 0; i < out.length; i++) if (i !== 256 + 55 && !(i >= 256 + 56 && i < 256 + 128)) expect(out[i]).toBe(base[i]);
  });
});

describe('readGpt and writeGptPlan', () => {
  for (const { ss, sectors } of SIZES) {
    const n = (128 * 128) / ss;
    const last = sectors - 1;
    const read = (disk: Uint8Array) => readGpt(reader(disk, ss), ss, sectors);
    const messages = (disk: Uint8Array) => read(disk).problems.map((p) => `${p.place} ${p.severity}: ${p.message}`);

    it(`a reader's own failure on ${ss}-byte sectors is thrown, not taken for a bad header`, () => {
      const disk = makeDisk(ss, sectors);
      // The protective MBR reads; the headers' sectors fail as a dying disk's would.
      const failing = (lba: number, count: number) => {
        if (lba === 0) return reader(disk, ss)(lba, count);
        throw new FastPatchError('IO', `read /dev/sdz at ${lba * ss}: input/output error`);
      };
      expect(() => readGpt(failing, ss, sectors)).toThrow(expect.objectContaining({ code: 'IO' }));
    });

    it(`reads a clean table on ${ss}-byte sectors and writes it back byte for byte`, () => {
      const disk = makeDisk(ss, sectors);
      const r = read(disk);
      expect(r.problems).toEqual([]);
      expect(r.source).toBe('primary');
      expect(r.mbr.kind).toBe('protective');
      expect(r.primary.valid && r.backup.valid).toBe(true);
      expect(r.backup.lba).toBe(last);
      expect(r.backup.header?.partitionEntryLba).toBe(last - n);
      expect(r.primary.header?.firstUsableLba).toBe(2 + n);
      const used = r.table!.entries.filter(isUsed);
      expect(used.map((e) => [e.index, e.label, e.attributes])).toEqual([[1, 'EFI-SYSTEM', 0n], [3, 'USR-A', 0x0101000000000000n], [4, 'USR-B', 0n], [9, 'ROOT', 0n]]);
      const again = new Uint8Array(disk.length);
      for (const w of writeGptPlan(r.table!, ss, sectors)) again.set(w.bytes, w.lba * ss);
      expect(same(again, disk)).toBe(true);
      const plan = writeGptPlan(r.table!, ss, sectors);
      expect(plan.map((w) => [w.role, w.lba, w.bytes.length])).toEqual([
        ['pmbr', 0, ss], ['primary-header', 1, ss], ['primary-entries', 2, n * ss], ['backup-entries', last - n, n * ss], ['backup-header', last, ss],
      ]);
    });

    it(`edits one attribute and keeps everything else on ${ss}-byte sectors`, () => {
      const disk = makeDisk(ss, sectors);
      const t = read(disk).table!;
      const next = { ...t, entries: t.entries.map((e) => (e.index === 4 ? { ...e, attributes: 0x0062000000000000n } : e)) };
      const out = disk.slice();
      for (const w of writeGptPlan(next, ss, sectors)) out.set(w.bytes, w.lba * ss);
      const r = read(out);
      expect(r.problems).toEqual([]);
      expect(r.table!.entries[3]!.attributes).toBe(0x0062000000000000n);
      expect(r.table!.entries[2]!.attributes).toBe(0x0101000000000000n);
    });

    const cases: Array<[string, (d: Uint8Array) => void, RegExp, 'primary' | 'backup' | undefined]> = [
      ['bad primary signature', (d) => { d[ss] = 0x46; }, /primary invalid: .*no "EFI PART" signature/, 'backup'],
      ['bad primary header CRC', (d) => { d[ss + 16] ^= 1; }, /primary invalid: .*header CRC 0x[0-9a-f]{8} does not match/, 'backup'],
      ['bad revision', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(8, 0x10001, true)), /primary invalid: .*revision 0x00010001/, 'backup'],
      ['header size 91', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(12, 91, true)), /primary invalid: .*header size 91 outside 92/, 'backup'],
      ['header size over the sector', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(12, ss + 1, true)), new RegExp(`header size ${ss + 1} outside`), 'backup'],
      ['reserved field set', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(20, 1, true)), /reserved field/, 'backup'],
      ['primary MyLBA wrong', (d) => patchHeader(d, ss, 1, (v) => v.setBigUint64(24, 2n, true)), /primary invalid: header at LBA 1: MyLBA is 2/, 'backup'],
      ['backup MyLBA wrong', (d) => patchHeader(d, ss, last, (v) => v.setBigUint64(24, 1n, true)), new RegExp(`backup invalid: header at LBA ${last}: MyLBA is 1`), 'primary'],
      ['backup AlternateLBA wrong', (d) => patchHeader(d, ss, last, (v) => v.setBigUint64(32, 2n, true)), /backup invalid: AlternateLBA is 2, not the primary header's LBA 1/, 'primary'],
      ['primary entries CRC', (d) => { d[2 * ss + 200] ^= 0x80; }, /primary invalid: entry array CRC .* does not match/, 'backup'],
      ['backup entries CRC', (d) => { d[(last - n) * ss + 200] ^= 0x80; }, /backup invalid: entry array CRC/, 'primary'],
      ['backup header missing', (d) => d.fill(0, last * ss), new RegExp(`backup invalid: header at LBA ${last}: no "EFI PART"`), 'primary'],
      ['entry count absurd', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(80, 0xffffffff, true)), /4294967295 entries of 128 bytes exceed 1048576/, 'backup'],
      ['entry count 0', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(80, 0, true)), /entry count is 0/, 'backup'],
      ['entry size 100', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(84, 100, true)), /entry size 100 is not 128 × 2\^n/, 'backup'],
      ['entry size 384', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(84, 384, true)), /entry size 384 is not 128 × 2\^n/, 'backup'],
      ['entry size absurd', (d) => patchHeader(d, ss, 1, (v) => v.setUint32(84, 0x80000000, true)), /exceed/, 'backup'],
      ['AlternateLBA beyond the disk', (d) => patchHeader(d, ss, 1, (v) => v.setBigUint64(32, BigInt(sectors + 5), true)), /AlternateLBA \d+ is beyond the last LBA/, 'backup'],
      ['LastUsable beyond the disk', (d) => patchHeader(d, ss, 1, (v) => v.setBigUint64(48, BigInt(sectors), true)), /LastUsableLBA \d+ is beyond/, 'backup'],
      ['FirstUsable over the entries', (d) => patchHeader(d, ss, 1, (v) => v.setBigUint64(40, 3n, true)), /overlaps the usable range/, 'backup'],
      ['LBA field over 2^53', (d) => patchHeader(d, ss, 1, (v) => v.setBigUint64(40, 1n << 60n, true)), /FirstUsableLBA \d+ out of range/, 'backup'],
      ['both headers bad', (d) => { d[ss] = 0; d[last * ss] = 0; }, /table invalid: neither GPT copy is valid/, undefined],
    ];
    for (const [name, damage, expected, source] of cases) {
      it(`reports ${name} on ${ss}-byte sectors`, () => {
        const disk = makeDisk(ss, sectors);
        damage(disk);
        // Work done, not time: a damaged count or size must not make the reader read more than a
        // table's worth of sectors (the entries of both copies: 2 × 16 KiB, plus headers and MBR).
        let sectorsRead = 0;
        const r = readGpt((lba, count) => ((sectorsRead += count), reader(disk, ss)(lba, count)), ss, sectors);
        expect(sectorsRead).toBeLessThanOrEqual(2 * (16384 / ss) + 4);
        expect(messages(disk).join('\n')).toMatch(expected);
        expect(r.source).toBe(source);
        if (source !== undefined) expect(r.table!.entries.filter(isUsed).length).toBe(4);
      });
    }

    it(`rebuilds a bad primary from the backup, byte for byte, on ${ss}-byte sectors`, () => {
      const good = makeDisk(ss, sectors);
      const disk = good.slice();
      disk.fill(0, ss, (2 + n) * ss);
      const r = read(disk);
      expect(r.source).toBe('backup');
      for (const w of writeGptPlan(r.table!, ss, sectors)) disk.set(w.bytes, w.lba * ss);
      expect(same(disk, good)).toBe(true);
    });

    it(`warns when both copies are valid but differ, on ${ss}-byte sectors`, () => {
      const disk = makeDisk(ss, sectors);
      const t = read(disk).table!;
      const other = makeDisk(ss, sectors, { ...t, entries: t.entries.map((e) => (e.index === 3 ? { ...e, attributes: 0n } : e)) });
      disk.set(other.subarray((last - n) * ss), (last - n) * ss);
      const r = read(disk);
      expect(r.source).toBe('primary');
      expect(messages(disk)).toEqual(expect.arrayContaining([
        'table warning: primary and backup entry arrays differ (the primary wins; repair before writing)',
        expect.stringMatching(/headers differ in entriesCrc32/),
      ]));
      expect(r.table!.entries[2]!.attributes).toBe(0x0101000000000000n);
    });

    it(`reads but flags spec-valid values some reader refuses, on ${ss}-byte sectors`, () => {
      const disk = makeDisk(ss, sectors);
      patchHeader(disk, ss, 1, (v) => v.setUint32(12, 96, true), 96);
      patchHeader(disk, ss, last, (v) => v.setUint32(12, 96, true), 96);
      const r = read(disk);
      expect(r.source).toBe('primary');
      expect(messages(disk)).toContain('primary warning: header size 96 is not 92 (GRUB computes the CRC over 92 bytes)');
      expect(() => writeGptPlan(r.table!, ss, sectors)).not.toThrow(); // the plan normalises to 92
      const small = makeDisk(ss, sectors, flatcarTable(ss, sectors, 64, 128));
      expect(messages(small)).toEqual(expect.arrayContaining([
        'primary warning: entry count 64 is not 128 (cgpt refuses it)',
        'primary warning: entry array of 8192 bytes is under 16384 (GRUB refuses it)',
      ]));
      const wide = makeDisk(ss, sectors, flatcarTable(ss, sectors, 128, 256));
      expect(read(wide).source).toBe('primary');
      expect(messages(wide)).toContain('primary warning: entry size 256 is not 128 (the Linux kernel and cgpt refuse it)');
    });

    it(`reports a missing or hybrid PMBR and a backup not at the end, on ${ss}-byte sectors`, () => {
      const disk = makeDisk(ss, sectors);
      disk.fill(0, 0, 512);
      expect(messages(disk)).toEqual([expect.stringMatching(/^mbr warning: no protective MBR .*no 55 AA/)]);
      const hybrid = makeDisk(ss, sectors);
      hybrid.set([0x80, 0, 0, 0, 0x83, 0, 0, 0, 40, 0, 0, 0, 100, 0, 0, 0], 462);
      expect(read(hybrid).problems).toEqual([]);
      expect(read(hybrid).mbr.kind).toBe('hybrid');
      const t = read(hybrid).table!;
      const plan = writeGptPlan(t, ss, sectors);
      expect(plan[0]!.bytes).toEqual(hybrid.subarray(0, ss));
      // An image dd'd onto a bigger disk: backup at the old end.
      const grown = new Uint8Array((sectors + 8) * ss);
      grown.set(disk);
      grown.set(buildProtectiveMbr(sectors + 8, ss));
      const g = readGpt(reader(grown, ss), ss, sectors + 8);
      expect(g.source).toBe('primary');
      expect(g.backup.valid).toBe(true);
      expect(g.problems.map((p) => p.message)).toEqual([`AlternateLBA ${last} is not the last LBA ${sectors + 7} (cgpt calls the backup invalid)`]);
    });
  }

  it('detects a table made for the other sector size', () => {
    const d512 = makeDisk(512, 16384);
    const as4k = readGpt(reader(d512, 4096), 4096, 2048);
    expect(as4k.source).toBe(undefined);
    expect(as4k.problems.map((p) => p.message)).toContain('a GPT header is at byte 512: the table was made for 512-byte sectors');
    const d4k = makeDisk(4096, 2048);
    const as512 = readGpt(reader(d4k, 512), 512, 16384);
    expect(as512.problems.map((p) => p.message)).toContain('a GPT header is at byte 4096: the table was made for 4096-byte sectors');
  });

  it('never throws on a device that returns short reads', () => {
    const disk = makeDisk(512, 16384);
    for (const cut of [0, 100, 511, 512, 600, 603, 1024, 5000, 17407, 17408, disk.length - 600]) {
      const short = (lba: number, count: number) => disk.slice(Math.min(lba * 512, cut), Math.min((lba + count) * 512, cut));
      const r = readGpt(short, 512, 16384);
      expect(r.problems.length).toBeGreaterThan(0);
    }
  });

  it('refuses plans no reader accepts', () => {
    const t = flatcarTable(512, 16384);
    expect(() => writeGptPlan({ ...t, backupEntriesLba: 20 }, 512, 16384)).toThrow(FastPatchError);
    expect(() => writeGptPlan({ ...t, backupHeaderLba: 16384 }, 512, 16384)).toThrow(/beyond the last LBA/);
    expect(() => writeGptPlan({ ...t, entryCount: 1 << 20 }, 512, 16384)).toThrow(/exceed/);
    expect(() => writeGptPlan(t, 520, 16384)).toThrow(RangeError);
    expect(MAX_ENTRY_ARRAY_BYTES).toBe(1 << 20);
  });
});
