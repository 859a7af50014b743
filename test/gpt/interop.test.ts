/**
 * Interop with the real tools (reference notes §6): tables made by sgdisk, sfdisk and cgpt are read
 * by the codec and compared with what those tools print; tables written by the codec are checked
 * with `sgdisk -v`, `cgpt show` and `sfdisk --dump`. 4096-byte sectors need a loop device, so root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FLATCAR_SLOT_GUIDS, PARTITION_TYPES } from '../../dist/src/gpt/guid.js';
import { isUsed, readGpt, writeGptPlan, type GptEntry, type GptReadResult } from '../../dist/src/gpt/table.js';

const USR = PARTITION_TYPES.COREOS_USR;
const MIB = 1 << 20;

function run(cmd: string, args: string[], input?: string): { stdout: string; stderr: string; status: number } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (r.error) throw r.error;
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}
function ok(cmd: string, args: string[], input?: string): string {
  const r = run(cmd, args, input);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
const haveTools = ['sgdisk', 'sfdisk', 'cgpt', 'losetup'].every((t) => run('sh', ['-c', `command -v ${t}`]).status === 0);
const isRoot = process.getuid?.() === 0;

/** A disk as the codec sees it: a path (image file or loop device), its sector size and sector count. */
interface Disk { path: string; ss: number; sectors: number }

function readDisk(d: Disk): GptReadResult {
  const fd = openSync(d.path, 'r');
  try {
    return readGpt((lba, count) => {
      const buf = new Uint8Array(count * d.ss);
      const n = readSync(fd, buf, 0, buf.length, lba * d.ss);
      return buf.subarray(0, n);
    }, d.ss, d.sectors);
  } finally {
    closeSync(fd);
  }
}

function writeEntries(d: Disk, r: GptReadResult, edit: (e: GptEntry) => GptEntry): void {
  const table = { ...r.table!, entries: r.table!.entries.map(edit) };
  const fd = openSync(d.path, 'r+');
  try {
    for (const w of writeGptPlan(table, d.ss, d.sectors)) writeSync(fd, w.bytes, 0, w.bytes.length, w.lba * d.ss);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The table sectors' bytes (LBA 0..33-ish and the backup), for byte-identity checks. */
function tableBytes(d: Disk, r: GptReadResult): Buffer {
  const t = r.table!;
  const fd = openSync(d.path, 'r');
  try {
    const read = (lba: number, count: number) => {
      const b = Buffer.alloc(count * d.ss);
      readSync(fd, b, 0, b.length, lba * d.ss);
      return b;
    };
    return Buffer.concat([read(0, t.firstUsableLba), read(t.lastUsableLba + 1, d.sectors - t.lastUsableLba - 1)]);
  } finally {
    closeSync(fd);
  }
}

interface SgdiskInfo { type: string; unique: string; first: number; last: number; attributes: bigint; name: string }
function sgdiskInfo(path: string, n: number): SgdiskInfo {
  const out = ok('sgdisk', ['-i', String(n), path]);
  const field = (label: string) => {
    const m = new RegExp(`^${label}: (.*)$`, 'm').exec(out);
    if (!m) throw new Error(`sgdisk -i ${n}: no "${label}" in ${out}`);
    return m[1] as string;
  };
  return {
    type: field('Partition GUID code').split(' ')[0] as string,
    unique: field('Partition unique GUID'),
    first: Number(field('First sector').split(' ')[0]),
    last: Number(field('Last sector').split(' ')[0]),
    attributes: BigInt(`0x${field('Attribute flags')}`),
    name: /^'(.*)'$/.exec(field('Partition name'))?.[1] as string,
  };
}

interface SfdiskPart { start: number; size: number; type: string; uuid: string; name: string; attrs: bigint }
interface SfdiskDump { labelId: string; firstLba: number; lastLba: number; sectorSize: number; parts: Map<number, SfdiskPart> }
/** Bits sfdisk prints: 0-2 by name and 48-63 as "GUID:n,..." (bits 3-47 are not printed). */
const SFDISK_BITS = 0xffff000000000007n;
function sfdiskDump(path: string): SfdiskDump {
  const out = ok('sfdisk', ['--dump', path]);
  const header = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(out)?.[1] as string;
  const parts = new Map<number, SfdiskPart>();
  for (const line of out.split('\n')) {
    const m = /^\S*?(\d+) : (.*)$/.exec(line);
    if (!m) continue;
    const kv = (k: string) => new RegExp(`${k}=\\s*("([^"]*)"|[^,]*)`).exec(m[2] as string);
    const str = (k: string) => { const x = kv(k); return x ? (x[2] ?? x[1] as string) : ''; };
    let attrs = 0n;
    for (const tok of str('attrs').split(' ').filter(Boolean)) {
      if (tok === 'RequiredPartition') attrs |= 1n;
      else if (tok === 'NoBlockIOProtocol') attrs |= 2n;
      else if (tok === 'LegacyBIOSBootable') attrs |= 4n;
      else if (tok.startsWith('GUID:')) for (const b of tok.slice(5).split(',')) attrs |= 1n << BigInt(b);
      else throw new Error(`sfdisk attribute token ${tok}`);
    }
    parts.set(Number(m[1]), { start: Number(str('start')), size: Number(str('size')), type: str('type'), uuid: str('uuid'), name: str('name'), attrs });
  }
  return { labelId: header('label-id'), firstLba: Number(header('first-lba')), lastLba: Number(header('last-lba')), sectorSize: Number(header('sector-size')), parts };
}

const cgptValue = (path: string, n: number, flag: string) => ok('cgpt', ['show', '-i', String(n), flag, path]).trim();

/** Everything the three tools print agrees with the codec's reading of `d`. */
function expectToolsAgree(d: Disk, r: GptReadResult): void {
  expect(r.problems).toEqual([]);
  const used = r.table!.entries.filter(isUsed);
  const dump = sfdiskDump(d.path);
  expect(dump.sectorSize).toBe(d.ss);
  expect(dump.labelId).toBe(r.table!.diskGuid);
  expect(dump.firstLba).toBe(r.table!.firstUsableLba);
  expect(dump.lastLba).toBe(r.table!.lastUsableLba);
  expect([...dump.parts.keys()]).toEqual(used.map((e) => e.index));
  for (const e of used) {
    const n = e.index;
    expect(sgdiskInfo(d.path, n)).toEqual({ type: e.typeGuid, unique: e.uniqueGuid, first: e.firstLba, last: e.lastLba, attributes: e.attributes, name: e.label });
    expect(dump.parts.get(n)).toEqual({ start: e.firstLba, size: e.lastLba - e.firstLba + 1, type: e.typeGuid, uuid: e.uniqueGuid, name: e.label, attrs: e.attributes & SFDISK_BITS });
    expect(cgptValue(d.path, n, '-t')).toBe(e.typeGuid);
    expect(cgptValue(d.path, n, '-u')).toBe(e.uniqueGuid);
    expect(cgptValue(d.path, n, '-l')).toBe(e.label);
    expect(Number(cgptValue(d.path, n, '-b'))).toBe(e.firstLba);
    expect(Number(cgptValue(d.path, n, '-s'))).toBe(e.lastLba - e.firstLba + 1);
    expect(Number(cgptValue(d.path, n, '-P'))).toBe(Number((e.attributes >> 48n) & 0xfn));
    expect(Number(cgptValue(d.path, n, '-T'))).toBe(Number((e.attributes >> 52n) & 0xfn));
    expect(Number(cgptValue(d.path, n, '-S'))).toBe(Number((e.attributes >> 56n) & 1n));
    expect(BigInt(cgptValue(d.path, n, '-A'))).toBe(e.attributes >> 48n);
  }
}

/** The peers' integrity checks: sgdisk -v clean with empty stderr, cgpt show with empty stderr. */
function expectToolsClean(d: Disk): void {
  const v = run('sgdisk', ['-v', d.path]);
  expect(v.stderr).toBe('');
  expect(v.stdout).toContain('No problems found.');
  const c = run('cgpt', ['show', d.path]);
  expect(c.stderr).toBe('');
  expect(c.status).toBe(0);
}

/** Reads, compares, checks that an unchanged re-encode is byte-identical, then edits USR-B/KERN-B and checks again. */
function roundTrip(d: Disk, slot: number): void {
  const r = readDisk(d);
  expectToolsAgree(d, r);
  const before = tableBytes(d, r);
  writeEntries(d, r, (e) => e);
  expect(tableBytes(d, r).equals(before)).toBe(true);
  // P3 T7 S1 on the slot, plus bit 60 and bit 2, which FastPatch does not own.
  const attrs = (3n << 48n) | (7n << 52n) | (1n << 56n) | (1n << 60n) | 4n;
  writeEntries(d, r, (e) => (e.index === slot ? { ...e, attributes: attrs } : e));
  expectToolsClean(d);
  expect(cgptValue(d.path, slot, '-P')).toBe('3');
  expect(cgptValue(d.path, slot, '-T')).toBe('7');
  expect(cgptValue(d.path, slot, '-S')).toBe('1');
  expect(sfdiskDump(d.path).parts.get(slot)?.attrs).toBe(attrs);
  const after = readDisk(d);
  expect(after.table!.entries.filter((e) => e.index !== slot)).toEqual(r.table!.entries.filter((e) => e.index !== slot));
  expectToolsAgree(d, after);
}

function flatcarSgdisk(path: string, mib: (n: number) => number): void {
  ok('sgdisk', [
    '-a', String(mib(1)),
    '-n', `1:${mib(1)}:+16M`, '-c', '1:EFI-SYSTEM', '-t', '1:EF00',
    '-n', '2:0:+1M', '-c', '2:BIOS-BOOT', '-t', '2:EF02',
    '-n', '3:0:+16M', '-c', '3:USR-A', '-t', `3:${USR}`, '-u', `3:${FLATCAR_SLOT_GUIDS.USR_A}`,
    '-n', '4:0:+16M', '-c', '4:USR-B', '-t', `4:${USR}`, '-u', `4:${FLATCAR_SLOT_GUIDS.USR_B}`,
    '-n', '6:0:+8M', '-c', '6:OEM', '-t', '6:8300',
    '-n', '9:0:0', '-c', '9:ROOT', '-t', `9:${PARTITION_TYPES.COREOS_ROOT}`,
    '-A', '3:=:0101000000000000', path,
  ]);
}

function flatcarSfdisk(path: string, ss: number): void {
  const s = (bytes: number) => bytes / ss;
  ok('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', path], [
    'label: gpt',
    'label-id: 00000000-0000-0000-0000-000000000001',
    `start=${s(MIB)}, size=${s(16 * MIB)}, type=${PARTITION_TYPES.EFI_SYSTEM}, name="EFI-SYSTEM"`,
    `size=${s(MIB)}, type=${PARTITION_TYPES.BIOS_BOOT}, name="BIOS-BOOT"`,
    `size=${s(16 * MIB)}, type=${USR}, uuid=${FLATCAR_SLOT_GUIDS.USR_A}, name="USR-A", attrs="GUID:48,56"`,
    `size=${s(16 * MIB)}, type=${USR}, uuid=${FLATCAR_SLOT_GUIDS.USR_B}, name="USR-B"`,
    '',
  ].join('\n'));
}

function chromeosCgpt(path: string, ss: number): void {
  const s = (bytes: number) => String(bytes / ss);
  run('cgpt', ['create', path]); // warns about the empty disk on stderr, harmlessly
  ok('cgpt', ['boot', '-p', path]);
  ok('cgpt', ['add', '-i', '2', '-b', s(MIB), '-s', s(4 * MIB), '-t', 'kernel', '-l', 'KERN-A', '-P', '2', '-T', '0', '-S', '1', path]);
  ok('cgpt', ['add', '-i', '3', '-b', s(5 * MIB), '-s', s(8 * MIB), '-t', 'rootfs', '-l', 'ROOT-A', path]);
  ok('cgpt', ['add', '-i', '4', '-b', s(13 * MIB), '-s', s(4 * MIB), '-t', 'kernel', '-l', 'KERN-B', '-P', '1', '-T', '15', '-S', '0', path]);
  ok('cgpt', ['add', '-i', '5', '-b', s(17 * MIB), '-s', s(8 * MIB), '-t', 'rootfs', '-l', 'ROOT-B', path]);
  ok('cgpt', ['add', '-i', '1', '-b', s(25 * MIB), '-s', s(20 * MIB), '-t', 'data', '-l', 'STATE', path]);
  ok('cgpt', ['add', '-i', '2', '-R', '1', '-B', '1', path]);
}

describe.skipIf(!haveTools)('interop with sgdisk, sfdisk and cgpt', () => {
  let dir = '';
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'fastpatch-gpt-')); });
  afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  /** A fresh image file of `mib` MiB. */
  const image = (name: string, mib: number): string => {
    const path = join(dir, name);
    writeFileSync(path, new Uint8Array(0));
    run('truncate', ['-s', `${mib}M`, path]);
    return path;
  };
  const fileDisk = (path: string): Disk => ({ path, ss: 512, sectors: statSync(path).size / 512 });

  /** Runs `body` on a 4096-byte-sector loop device over a fresh image; skipped with a reason unless root. */
  const on4k = (name: string, mib: number, body: (d: Disk) => void) => {
    if (!isRoot) {
      console.log(`skipped ${name} on 4096-byte sectors: losetup needs root`);
      return;
    }
    const path = image(name, mib);
    const dev = ok('losetup', ['--sector-size', '4096', '-f', '--show', path]).trim();
    try {
      body({ path: dev, ss: 4096, sectors: statSync(path).size / 4096 });
    } finally {
      run('losetup', ['-d', dev]);
    }
  };

  it('reads and edits a Flatcar layout made by sgdisk (512-byte sectors)', () => {
    const path = image('sg512.img', 80);
    flatcarSgdisk(path, (n) => n * 2048);
    const d = fileDisk(path);
    const r = readDisk(d);
    expect(r.table!.entries[2]).toMatchObject({ index: 3, label: 'USR-A', typeGuid: USR, uniqueGuid: FLATCAR_SLOT_GUIDS.USR_A, attributes: 0x0101000000000000n });
    expect(r.backup.lba).toBe(d.sectors - 1);
    expect(r.table!.backupEntriesLba).toBe(d.sectors - 33);
    roundTrip(d, 4);
  });

  it('reads and edits a Flatcar layout made by sgdisk (4096-byte sectors)', () => {
    on4k('sg4k.img', 80, (d) => {
      flatcarSgdisk(d.path, (n) => n * 256);
      const r = readDisk(d);
      expect(r.table!.firstUsableLba).toBe(6);
      expect(r.table!.backupEntriesLba).toBe(d.sectors - 5);
      roundTrip(d, 4);
    });
  });

  it('reads and edits a layout made by sfdisk (512 and 4096-byte sectors)', () => {
    const path = image('sf512.img', 64);
    flatcarSfdisk(path, 512);
    const d = fileDisk(path);
    expect(readDisk(d).table!.diskGuid).toBe('00000000-0000-0000-0000-000000000001');
    roundTrip(d, 4);
    on4k('sf4k.img', 64, (d4) => {
      flatcarSfdisk(d4.path, 4096);
      roundTrip(d4, 4);
    });
  });

  it('reads cgpt -P/-T/-S at bits 48-51, 52-55 and 56, and -R/-B at bits 0 and 2 (512-byte sectors)', () => {
    const path = image('cros512.img', 64);
    chromeosCgpt(path, 512);
    const d = fileDisk(path);
    const r = readDisk(d);
    const e = r.table!.entries;
    expect(e[1]).toMatchObject({ index: 2, label: 'KERN-A', typeGuid: PARTITION_TYPES.CHROMEOS_KERNEL, attributes: (2n << 48n) | (1n << 56n) | 1n | 4n });
    expect(e[3]).toMatchObject({ index: 4, label: 'KERN-B', attributes: (1n << 48n) | (15n << 52n) });
    expect(e[2]).toMatchObject({ index: 3, label: 'ROOT-A', typeGuid: PARTITION_TYPES.CHROMEOS_ROOTFS, attributes: 0n });
    expect(e[0]).toMatchObject({ index: 1, label: 'STATE', typeGuid: PARTITION_TYPES.LINUX_FILESYSTEM });
    roundTrip(d, 4);
    // cgpt writes on top of the codec's table without asking for a repair, and the codec reads its result.
    ok('cgpt', ['add', '-i', '4', '-P', '5', '-T', '0', '-S', '0', path]);
    ok('cgpt', ['prioritize', '-i', '4', path]);
    const p = readDisk(d);
    expect(p.problems).toEqual([]);
    expect(p.table!.entries[3]!.attributes >> 48n).toBe(BigInt(cgptValue(path, 4, '-A')));
    expect((p.table!.entries[3]!.attributes >> 48n) & 0x1ffn).toBe(2n); // prioritize -i 4: P2 T0 S0
    expect(p.table!.entries[3]!.attributes & ((1n << 60n) | 4n)).toBe((1n << 60n) | 4n);
    expectToolsAgree(d, p);
  });

  it('reads and edits a cgpt layout on 4096-byte sectors', () => {
    on4k('cros4k.img', 64, (d) => {
      chromeosCgpt(d.path, 4096);
      const r = readDisk(d);
      expect(r.table!.firstUsableLba).toBe(6);
      expect(r.table!.entries[1]!.attributes).toBe((2n << 48n) | (1n << 56n) | 5n);
      roundTrip(d, 4);
    });
  });

  it('agrees with cgpt and sgdisk on a broken primary, and repairs it like cgpt repair', () => {
    const path = image('broken.img', 64);
    chromeosCgpt(path, 512);
    const d = fileDisk(path);
    const good = readDisk(d);
    const before = tableBytes(d, good);
    const fd = openSync(path, 'r+');
    writeSync(fd, new Uint8Array([0xff]), 0, 1, 512 + 16); // primary header CRC
    closeSync(fd);
    const bad = readDisk(d);
    expect(bad.source).toBe('backup');
    expect(bad.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^header at LBA 1: header CRC/)]);
    expect(run('cgpt', ['show', path]).stderr).toContain('WARNING: Primary GPT header is invalid');
    writeEntries(d, bad, (e) => e);
    expect(tableBytes(d, good).equals(before)).toBe(true);
    expectToolsClean(d);
  });
});
