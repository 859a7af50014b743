// Disks as sectors (src/disk/disk.ts): the sector size of image files (from where the GPT header
// sits) and of loop devices (from sysfs), and reads and writes kept inside the disk.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushDisk, openDisk, readSectors, writeSectors } from '../../dist/src/disk/disk.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { MiB, removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const canRun = rootOrWarn('disk sector-size tests on loop devices');
let dir: string;

/** A 16 MiB image with an sgdisk-made GPT, written through a loop device of `sectorSize` sectors when not 512. */
async function gptImage(name: string, sectorSize: number): Promise<string> {
  const path = join(dir, name);
  await fsp.writeFile(path, new Uint8Array(16 * MiB));
  if (sectorSize === 512) execFileSync('sgdisk', ['-o', '-n', '1:0:+4M', '-c', '1:USR-A', path], { stdio: 'ignore' });
  else await withLoopDevice(path, { sectorSize }, async (dev) => void execFileSync('sgdisk', ['-o', '-n', '1:0:+4M', '-c', '1:USR-A', dev], { stdio: 'ignore' }));
  return path;
}

beforeAll(async () => {
  dir = await tempDir('disk');
});
afterAll(() => removeDir(dir));

describe('openDisk', () => {
  it('finds 512-byte sectors in an image whose GPT header is at byte 512', async () => {
    const disk = await openDisk(await gptImage('512.img', 512));
    try {
      expect(disk).toMatchObject({ sectorSize: 512, sectors: (16 * MiB) / 512, isBlockDevice: false });
      expect(Buffer.from(await readSectors(disk, 1, 1)).subarray(0, 8).toString('latin1')).toBe('EFI PART');
    } finally {
      await disk.handle.close();
    }
  });

  it.runIf(canRun)('finds 4096-byte sectors in an image and on the loop device that made it', async () => {
    const path = await gptImage('4k.img', 4096);
    const disk = await openDisk(path);
    try {
      expect(disk).toMatchObject({ sectorSize: 4096, sectors: (16 * MiB) / 4096 });
      expect(Buffer.from(await readSectors(disk, 1, 1)).subarray(0, 8).toString('latin1')).toBe('EFI PART');
    } finally {
      await disk.handle.close();
    }
    await withLoopDevice(path, { sectorSize: 4096 }, async (dev) => {
      const loop = await openDisk(dev);
      try {
        expect(loop).toMatchObject({ sectorSize: 4096, sectors: (16 * MiB) / 4096, isBlockDevice: true });
        expect(await asyncCodeOf(() => openDisk(dev, { sectorSize: 512 }))).toBe('USAGE');
      } finally {
        await loop.handle.close();
      }
    });
  });

  it('defaults to 512 for an image without a GPT, and refuses other sector sizes', async () => {
    const path = join(dir, 'blank.img');
    await fsp.writeFile(path, new Uint8Array(MiB));
    const disk = await openDisk(path);
    expect(disk.sectorSize).toBe(512);
    await disk.handle.close();
    expect(await asyncCodeOf(() => openDisk(path, { sectorSize: 1024 }))).toBe('USAGE');
  });

  it('keeps reads and writes inside the disk, and writes only when opened for writing', async () => {
    const path = join(dir, 'rw.img');
    await fsp.writeFile(path, new Uint8Array(8 * 512));
    const ro = await openDisk(path);
    await expect(writeSectors(ro, 0, new Uint8Array(512))).rejects.toThrow(/read-only/);
    expect(await asyncCodeOf(() => readSectors(ro, 7, 2))).toBe('IO');
    await ro.handle.close();
    const rw = await openDisk(path, { write: true });
    try {
      expect(await asyncCodeOf(() => writeSectors(rw, 7, new Uint8Array(1024)))).toBe('IO');
      expect(await asyncCodeOf(() => writeSectors(rw, 0, new Uint8Array(100)))).toBe('IO');
      await writeSectors(rw, 3, new Uint8Array(512).fill(7));
      await flushDisk(rw);
      expect([...(await readSectors(rw, 3, 1))].every((b) => b === 7)).toBe(true);
    } finally {
      await rw.handle.close();
    }
  });
});
