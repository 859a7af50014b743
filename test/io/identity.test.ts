// io/identity and io/mounts: a block device resolved to the bytes it names (loop devices to their
// backing file and window, partitions to their disk's range, recursively), sysfs numbers read
// with bounds, and the overlap of two lists of ranges.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockRanges, pathRangeUsers, sharedBytes, type PhysicalRange } from '../../dist/src/io/identity.js';
import { loopBacking, sysfsNumber } from '../../dist/src/io/mounts.js';
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
});

describe.runIf(canRun)('loop devices and partitions in sysfs (root)', () => {
  const attach = (...args: string[]) => execFileSync('losetup', ['--find', '--show', ...args], { encoding: 'utf8' }).trim();
  const detach = (device: string) => execFileSync('losetup', ['--detach', device]);
  const majorMinor = (device: string) => execFileSync('lsblk', ['-dno', 'MAJ:MIN', device], { encoding: 'utf8' }).trim();

  it('loopBacking: file, offset and size limit; a deleted file says so; not a loop device: undefined', async () => {
    const file = join(dir, 'backing file with spaces.img');
    await fsp.writeFile(file, new Uint8Array(4 * MiB));
    const loop = attach('--offset', '8192', '--sizelimit', String(MiB), file);
    try {
      const mm = majorMinor(loop);
      expect(await loopBacking(mm)).toEqual({ file, deleted: false, offset: 8192, sizeLimit: MiB });
      await fsp.rm(file);
      expect(await loopBacking(mm)).toEqual({ file, deleted: true, offset: 8192, sizeLimit: MiB });
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
    const stats = await fsp.stat(file);
    const base = `file ${stats.dev}:${stats.ino}`;
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
