// `fastpatch gpt create` and `gpt repair`: new Flatcar-layout disks that sgdisk, sfdisk and cgpt
// accept (512 and 4096-byte sectors), and a bad copy of the GPT rebuilt from the good one.
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFlatcarDisk, readDiskGpt, repairGpt } from '../../dist/src/index.js';
import { runCli } from '../helpers/cli.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { MiB, removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const canLoop = rootOrWarn('gpt create on a 4096-byte-sector loop device');
let dir: string;
beforeAll(async () => {
  dir = await tempDir('gpt-create');
});
afterAll(() => removeDir(dir));

function toolsAccept(disk: string): void {
  const v = spawnSync('sgdisk', ['-v', disk], { encoding: 'utf8' });
  expect(v.stderr).toBe('');
  expect(v.stdout).toContain('No problems found.');
  const dump = execFileSync('sfdisk', ['--dump', disk], { encoding: 'utf8' });
  for (const name of ['EFI-SYSTEM', 'USR-A', 'USR-B', 'OEM', 'ROOT']) expect(dump).toContain(`name="${name}"`);
  expect(execFileSync('cgpt', ['show', '-i', '3', '-l', disk], { encoding: 'utf8' }).trim()).toBe('USR-A');
  expect(execFileSync('cgpt', ['show', '-i', '3', '-S', disk], { encoding: 'utf8' }).trim()).toBe('1');
  expect(execFileSync('cgpt', ['show', '-i', '4', '-P', disk], { encoding: 'utf8' }).trim()).toBe('0');
}

describe('gpt create --layout flatcar', () => {
  it('writes a table sgdisk, sfdisk and cgpt accept, and refuses to replace one without --force', async () => {
    const disk = join(dir, 'new.img');
    const r = await runCli(['gpt', 'create', disk, '--size', '256M']);
    expect(r.code, r.stderr).toBe(0);
    toolsAccept(disk);
    const again = await runCli(['gpt', 'create', disk, '--size', '256M']);
    expect(again.code).toBe(2);
    expect((await runCli(['gpt', 'create', disk, '--force'])).code).toBe(0);
  });

  it("has Flatcar's own partition sizes on a disk big enough (disk_layout.json), scaled ones below", async () => {
    const big = join(dir, 'big.img');
    expect((await runCli(['gpt', 'create', big, '--size', '8G'])).code).toBe(0);
    toolsAccept(big);
    const sectors = (index: number, disk: string) =>
      execFileSync('cgpt', ['show', '-i', String(index), '-s', disk], { encoding: 'utf8' }).trim();
    const starts = (index: number, disk: string) =>
      Number(execFileSync('cgpt', ['show', '-i', String(index), '-b', disk], { encoding: 'utf8' }).trim());
    // In 512-byte sectors, as Flatcar's disk_layout.json gives them.
    expect([1, 3, 4, 6].map((i) => sectors(i, big))).toEqual(['2097152', '4194304', '4194304', '2097152']);
    for (const i of [1, 3, 4, 6, 9]) expect(starts(i, big) % 4096, `partition ${i} is 2 MiB aligned`).toBe(0);
    const small = join(dir, 'small.img');
    expect((await runCli(['gpt', 'create', small, '--size', '2G'])).code).toBe(0);
    toolsAccept(small);
    expect(Number(sectors(3, small))).toBeLessThan(4194304);
    expect(Number(sectors(3, small))).toBeGreaterThan(0);
  });

  it.runIf(canLoop)('on a loop device with 4096-byte sectors', async () => {
    const backing = join(dir, 'new4k.img');
    await fsp.writeFile(backing, new Uint8Array(128 * MiB));
    await withLoopDevice(backing, { sectorSize: 4096 }, async (dev) => {
      await createFlatcarDisk(dev);
      toolsAccept(dev);
      expect((await readDiskGpt(dev)).sectorSize).toBe(4096);
    });
  });
});

describe('gpt repair', () => {
  const corrupt = async (name: string, at: (size: number) => number) => {
    const disk = join(dir, name);
    await createFlatcarDisk(disk, { size: 64 * MiB });
    const bytes = await fsp.readFile(disk);
    const offset = at(bytes.length);
    bytes[offset] = bytes[offset]! ^ 0xff;
    await fsp.writeFile(disk, bytes);
    return disk;
  };

  it.each([
    ['the primary header', () => 512 + 8],
    ['the primary entries', () => 1024 + 128 * 2 + 60],
    ['the backup header', (size: number) => size - 512 + 16],
    ['the backup entries', (size: number) => size - 512 - 16384 + 10],
  ])('rebuilds %s from the other copy', async (_name, at) => {
    const disk = await corrupt(`bad-${Math.random().toString(36).slice(2)}.img`, at);
    expect((await readDiskGpt(disk)).problems.length).toBeGreaterThan(0);
    const result = await repairGpt(disk);
    expect(result.written).toBeGreaterThan(0);
    expect((await readDiskGpt(disk)).problems).toEqual([]);
    toolsAccept(disk);
    expect(await repairGpt(disk)).toMatchObject({ written: 0 });
  });

  it('refuses when neither copy is valid, writing nothing', async () => {
    const disk = await corrupt('both.img', () => 512 + 8);
    const bytes = await fsp.readFile(disk);
    bytes[bytes.length - 512 + 8] ^= 0xff;
    await fsp.writeFile(disk, bytes);
    expect(await asyncCodeOf(() => repairGpt(disk))).toBe('GPT_CORRUPT');
    expect(Buffer.compare(await fsp.readFile(disk), bytes)).toBe(0);
  });
});
