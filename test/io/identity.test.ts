// io/identity and io/mounts: a block device resolved to the bytes it names (loop devices to their
// backing file and window, partitions to their disk's range, recursively), sysfs numbers read
// with bounds, and the overlap of two lists of ranges.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANY_FILE, blockRanges, fileBase, pathRangeUsers, sharedBytes, type PhysicalRange } from '../../dist/src/io/identity.js';
import { LoopLookup, loopBacking, parseLoopTable, sysfsNumber } from '../../dist/src/io/mounts.js';
import { MiB, removeDir, rootOrWarn, tempDir } from '../helpers/payloads.js';

const canRun = rootOrWarn('identity tests with loop devices');
let dir: string;

beforeAll(async () => {
  dir = await tempDir('identity');
});
afterAll(async () => {
  await removeDir(dir);
});

describe('sysfsNumber', () => {
  it.each([
    ['0\n', 0],
    ['4096\n', 4096],
    [' 12 ', 12],
    ['9007199254740991', 9007199254740991],
  ])('%j is %d', (text, n) => expect(sysfsNumber(text)).toBe(n));
  it.each(['', '\n', '-1', '1e3', '0x10', '12abc', '9007199254740993', '99999999999999999', '1.5'])('%j is refused', (text) => {
    expect(sysfsNumber(text)).toBeUndefined();
  });
  it('undefined (an unreadable file) is refused', () => expect(sysfsNumber(undefined)).toBeUndefined());
});

describe('sharedBytes', () => {
  const r = (base: string, offset: number, length: number): PhysicalRange => ({ base, name: base, offset, length });
  it.each([
    ['the same range', [r('f', 0, 10)], [r('f', 0, 10)], { offset: 0, length: 10 }],
    ['overlapping by one byte', [r('f', 0, 10)], [r('f', 9, 10)], { offset: 9, length: 1 }],
    ['one inside the other', [r('f', 0, 100)], [r('f', 40, 10)], { offset: 40, length: 10 }],
    ['touching, not overlapping', [r('f', 0, 10)], [r('f', 10, 10)], undefined],
    ['other objects', [r('f', 0, 10)], [r('g', 0, 10)], undefined],
    ['the second of several', [r('a', 0, 10), r('f', 0, 10)], [r('f', 5, 1)], { offset: 5, length: 1 }],
  ])('%s', (_name, a, b, expected) => {
    const shared = sharedBytes(a, b);
    if (expected === undefined) expect(shared).toBeUndefined();
    else expect(shared).toMatchObject(expected);
    expect(sharedBytes(b, a) === undefined).toBe(expected === undefined);
  });

  it('a range of ANY_FILE (an unidentifiable loop device) may be any regular file, never a disk nor another unknown', () => {
    const unknown: PhysicalRange = { base: ANY_FILE, name: '/dev/loop9', offset: 0, length: Number.MAX_SAFE_INTEGER, uncertain: 'why' };
    const file: PhysicalRange = { base: 'file 254:0:12', name: '/srv/a.img', offset: 4096, length: 10 };
    expect(sharedBytes([unknown], [file])).toEqual({ base: 'file 254:0:12', name: '/srv/a.img', offset: 4096, length: 10, uncertain: 'why' });
    expect(sharedBytes([file], [unknown])).toMatchObject({ name: '/srv/a.img', uncertain: 'why' });
    expect(sharedBytes([unknown], [{ ...file, base: 'block 8:0' }])).toBeUndefined();
    expect(sharedBytes([unknown], [unknown])).toBeUndefined();
  });
});

describe('parseLoopTable (losetup --list --json)', () => {
  const entry = (fields: Record<string, unknown> = {}) => ({ name: '/dev/loop3', 'maj:min': '  7:3  ', 'back-file': '/srv/x (deleted)', 'back-ino': 12, 'back-maj:min': '   254:0  ', offset: 4096, sizelimit: 0, ...fields });
  const parse = (...entries: unknown[]) => parseLoopTable(JSON.stringify({ loopdevices: entries }));

  it('a loop device is known by MAJ:MIN:INO of its backing file, whatever its name says', () => {
    expect(parse(entry()).loops.get('7:3')).toEqual({ device: '/dev/loop3', file: '/srv/x (deleted)', backing: '254:0:12', offset: 4096, sizeLimit: 0 });
    // A name too long for sysfs: losetup prints null, the inode still identifies it.
    expect(parse(entry({ 'back-file': null })).loops.get('7:3')).toMatchObject({ file: '', backing: '254:0:12' });
    expect(parseLoopTable('')).toEqual({ loops: new Map() });
  });

  it.each([
    ['an inode past 2^53', { 'back-ino': 2 ** 60 }],
    ['a negative offset', { offset: -1 }],
    ['an offset given as text', { offset: '4096' }],
    ['a size limit past 2^53', { sizelimit: 1e300 }],
    ['no inode', { 'back-ino': null }],
    ['a device number that is not MAJ:MIN', { 'back-maj:min': '254' }],
    ['a device number out of bounds', { 'back-maj:min': '99999999999:0' }],
  ])('%s: the device is listed as unknown (assume the worst), not guessed', (_name, fields) => {
    expect(parse(entry(fields)).loops.get('7:3')).toMatchObject({ device: '/dev/loop3', unknown: expect.stringContaining('could not say') });
  });

  it.each([['not JSON', '{'], ['no list', '{"x":1}'], ['null', 'null']])('%s: an error, no devices', (_name, text) => {
    const table = parseLoopTable(text);
    expect(table.loops.size).toBe(0);
    expect(table.error).toMatch(/losetup printed/);
  });

  it('an entry without a MAJ:MIN makes the table partial (error set): devices it does not list are unknown', () => {
    const table = parse(entry({ 'maj:min': 'x' }));
    expect(table.loops.size).toBe(0);
    expect(table.error).toContain('/dev/loop3');
  });
});

describe.runIf(canRun)('loop devices and partitions in sysfs (root)', () => {
  const attach = (...args: string[]) => execFileSync('losetup', ['--find', '--show', ...args], { encoding: 'utf8' }).trim();
  const detach = (device: string) => execFileSync('losetup', ['--detach', device]);
  const majorMinor = (device: string) => execFileSync('lsblk', ['-dno', 'MAJ:MIN', device], { encoding: 'utf8' }).trim();

  it('loopBacking: the backing file by MAJ:MIN:INO, offset and size limit, also once deleted; not a loop device: undefined', async () => {
    const file = join(dir, 'backing file with spaces.img');
    await fsp.writeFile(file, new Uint8Array(4 * MiB));
    const base = fileBase(await fsp.stat(file));
    const loop = attach('--offset', '8192', '--sizelimit', String(MiB), file);
    try {
      const mm = majorMinor(loop);
      expect(await loopBacking(mm)).toEqual({ device: loop, file, backing: base.slice('file '.length), offset: 8192, sizeLimit: MiB });
      await fsp.rm(file);
      expect(await loopBacking(mm)).toMatchObject({ device: loop, file: `${file} (deleted)`, backing: base.slice('file '.length) });
    } finally {
      detach(loop);
    }
    expect(await loopBacking('4095:1048575')).toBeUndefined();
    await expect(loopBacking('../../etc')).rejects.toThrow(TypeError);
  });

  it('blockRanges: a loop window over a file, a loop over it at another offset, a partition of a loop device', async () => {
    const file = join(dir, 'disk.img');
    await fsp.writeFile(file, new Uint8Array(8 * MiB));
    execFileSync('sgdisk', ['-n', '1:2048:+1M', '-n', '2:0:+2M', file], { stdio: 'ignore' });
    const base = fileBase(await fsp.stat(file));
    const outer = attach('--offset', String(MiB), '--sizelimit', String(4 * MiB), file);
    try {
      expect(await blockRanges(majorMinor(outer))).toEqual([{ base, name: file, offset: MiB, length: 4 * MiB }]);
      const inner = attach('--offset', '4096', '--sizelimit', String(MiB), outer);
      try {
        expect(await blockRanges(majorMinor(inner))).toEqual([{ base, name: file, offset: MiB + 4096, length: MiB }]);
      } finally {
        detach(inner);
      }
      const whole = attach(file);
      try {
        execFileSync('partx', ['--add', whole]);
        try {
          // Partition 2 starts at sector 4096 (2 MiB) and holds 2 MiB.
          expect(await blockRanges(majorMinor(`${whole}p2`))).toEqual([{ base, name: file, offset: 2 * MiB, length: 2 * MiB }]);
        } finally {
          execFileSync('partx', ['--delete', whole]);
        }
      } finally {
        detach(whole);
      }
    } finally {
      detach(outer);
    }
  });

  it('a backing path longer than sysfs can show (over 4 KiB): still the same file', async () => {
    try {
      await longPath();
    } finally {
      execFileSync('rm', ['-rf', join(dir, 'deep')]);
    }
  });

  async function longPath(): Promise<void> {
    // Nested folders make the path ~5 KiB (made one step at a time: no system call takes it whole);
    // Node cannot use a path that long, so a bind mount gives the deepest folder a short name.
    const deep = join(dir, 'deep');
    const descend = `cd "${deep}" && for i in $(seq 20); do mkdir -p ${'d'.repeat(250)} && cd ${'d'.repeat(250)}; done`;
    // bash: dash's cd refuses a path past PATH_MAX.
    const depth = execFileSync('bash', ['-c', `mkdir -p "${deep}" && ${descend} && pwd | wc -c`], { encoding: 'utf8' });
    expect(Number(depth)).toBeGreaterThan(4096);
    const short = await fsp.mkdtemp(join(dir, 'short-'));
    // -c: mount must not canonicalize "." (too long a path); the kernel resolves it from the cwd.
    execFileSync('bash', ['-c', `${descend} && mount -c --bind . "${short}"`]);
    try {
      const file = join(short, 'f.img');
      await fsp.writeFile(file, new Uint8Array(MiB));
      const loop = execFileSync('bash', ['-c', `${descend} && losetup --find --show f.img`], { encoding: 'utf8' }).trim();
      try {
        expect(await blockRanges(majorMinor(loop))).toEqual([{ base: fileBase(await fsp.stat(file)), name: expect.any(String), offset: 0, length: MiB }]);
      } finally {
        detach(loop);
      }
    } finally {
      execFileSync('umount', [short]);
    }
  }

  it('a loop device whose backing cannot be identified (losetup missing or failing) may hold any regular file: refused, never ignored', async () => {
    const file = join(dir, 'unknown.img');
    await fsp.writeFile(file, new Uint8Array(MiB));
    const other = join(dir, 'other.img');
    await fsp.writeFile(other, new Uint8Array(MiB));
    const loop = attach(file);
    try {
      const noLosetup = new LoopLookup(async () => ({ loops: new Map(), error: 'losetup (util-linux) is not installed' }));
      const ranges = await blockRanges(majorMinor(loop), 0, noLosetup);
      expect(ranges).toEqual([expect.objectContaining({ base: ANY_FILE, uncertain: expect.stringContaining('losetup (util-linux) is not installed') })]);
      expect(ranges[0]!.uncertain).toContain(loop);
      const shared = sharedBytes(ranges, [{ base: fileBase(await fsp.stat(other)), name: other, offset: 0, length: MiB }]);
      expect(shared).toMatchObject({ name: other, uncertain: expect.stringContaining(loop) });
      // With losetup working, the same device is known exactly: the other file is not its.
      expect(sharedBytes(await blockRanges(majorMinor(loop)), [{ base: fileBase(await fsp.stat(other)), name: other, offset: 0, length: MiB }])).toBeUndefined();
    } finally {
      detach(loop);
    }
  });

  it('pathRangeUsers: a range of an image file is in use while a loop window over it is claimed, and only that range', async () => {
    const file = join(dir, 'slots.img');
    await fsp.writeFile(file, new Uint8Array(4 * MiB));
    const loop = attach('--offset', String(2 * MiB), '--sizelimit', String(MiB), file);
    try {
      const held = await fsp.open(loop, fsp.constants.O_RDONLY | fsp.constants.O_EXCL);
      try {
        expect(await pathRangeUsers(file, 2 * MiB + 4096, 4096)).toEqual([expect.stringContaining(`${loop} (bytes ${2 * MiB + 4096}+4096 of ${file}) is in use`)]);
        expect(await pathRangeUsers(file, 0, 2 * MiB)).toEqual([]);
        expect(await pathRangeUsers(file, 3 * MiB, MiB)).toEqual([]);
      } finally {
        await held.close();
      }
      expect(await pathRangeUsers(file, 2 * MiB, MiB)).toEqual([]);
    } finally {
      detach(loop);
    }
  });
});
