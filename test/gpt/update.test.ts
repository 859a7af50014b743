// `fastpatch update` (src/update/update.ts): the device's whole cycle on a disk image: v1 installed
// in USR-A, a delta to v2 written into USR-B (reading USR-A), B boots once, fails, the bootloader
// falls back to A; a second try is marked good and sticks. Also on a 4096-byte-sector loop device.
import { execFileSync, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, changeSlots, createFlatcarDisk, formatPublicKey, generateDeltaPayload, generateFullPayload, grubNext, markGood, openPayload, readDiskGpt, readPayloadChunks, sampleImage, setNext, updateDisk, type GptEntry } from '../../dist/src/index.js';
import { isUsed } from '../../dist/src/gpt/table.js';
import { CLI_PATH, runCli } from '../helpers/cli.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { MiB, makeKeyPair, readHead, removeDir, rootOrWarn, tempDir, withLoopDevice, withPartitionedLoop } from '../helpers/payloads.js';

const signer = makeKeyPair();
const canLoop = rootOrWarn('update onto a loop device');
let dir: string;
let v1: Uint8Array;
let v2: Uint8Array;
let full: string;
let delta: string;

beforeAll(async () => {
  dir = await tempDir('update');
  v1 = sampleImage({ size: 8 * MiB, variant: 1 });
  v2 = sampleImage({ size: 8 * MiB, variant: 2 });
  await fsp.writeFile(join(dir, 'v1.img'), v1);
  await fsp.writeFile(join(dir, 'v2.img'), v2);
  full = join(dir, 'v1.fpay');
  delta = join(dir, 'v1-v2.fpay');
  await generateFullPayload({ target: join(dir, 'v1.img'), keys: [signer.key], version: '1.0.0', out: full });
  await generateDeltaPayload({ source: join(dir, 'v1.img'), target: join(dir, 'v2.img'), keys: [signer.key], version: '2.0.0', out: delta });
});
afterAll(() => removeDir(dir));

/** Bytes of partition `index` of a disk, up to `length`. */
async function slotBytes(disk: string, index: number, length: number): Promise<Buffer> {
  const gpt = await readDiskGpt(disk);
  const e = gpt.table!.entries.find((x) => x.index === index)!;
  const handle = await fsp.open(disk, 'r');
  try {
    const out = Buffer.alloc(length);
    await handle.read(out, 0, length, e.firstLba * gpt.sectorSize);
    return out;
  } finally {
    await handle.close();
  }
}

async function cycle(disk: string): Promise<void> {
  // The image builder installs v1 into USR-A (partition 3).
  const gpt = await readDiskGpt(disk);
  const a = gpt.table!.entries.find((e) => e.index === 3)!;
  await applyPayload(readPayloadChunks(full), { trustedKeys: [signer.pub], target: disk, targetRange: { offset: a.firstLba * gpt.sectorSize, length: (a.lastLba - a.firstLba + 1) * gpt.sectorSize } });
  // The device updates: v2 into USR-B, from USR-A.
  const result = await updateDisk(readPayloadChunks(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow' });
  expect(result).toMatchObject({ running: { index: 3, label: 'USR-A' }, updated: { index: 4, label: 'USR-B' }, nextBoot: { bootable: true, index: 4 } });
  expect(Buffer.compare(await slotBytes(disk, 4, v2.length), Buffer.from(v2))).toBe(0);
  expect(Buffer.compare(await slotBytes(disk, 3, v1.length), Buffer.from(v1)), 'the running slot is only read').toBe(0);
  const entries = async () => (await readDiskGpt(disk)).table!.entries.filter((e) => e.typeGuid !== '00000000-0000-0000-0000-000000000000');
  // Boot 1: B, using its one try. It never marks itself good: boot 2 falls back to A.
  const boot1 = grubNext(await entries());
  expect(boot1).toMatchObject({ bootable: true, index: 4 });
  await changeSlots(disk, () => boot1.entries, { allowUnbootable: true });
  expect(grubNext(await entries())).toMatchObject({ bootable: true, index: 3, written: false });
  // Updating again while A runs is allowed; while B is about to boot it is refused.
  await updateDisk(readPayloadChunks(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow' });
  expect(await asyncCodeOf(() => updateDisk(readPayloadChunks(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', running: 'USR-B' }))).toMatch(/GPT_UNSAFE|USAGE/);
  // This time B comes up and is marked good: it sticks.
  const boot3 = grubNext(await entries());
  expect(boot3).toMatchObject({ index: 4 });
  await changeSlots(disk, () => boot3.entries, { allowUnbootable: true });
  await changeSlots(disk, (e) => markGood(e, 4));
  expect(grubNext(await entries())).toMatchObject({ index: 4, written: false });
}

describe('update', () => {
  it('runs the whole cycle on a disk image', async () => {
    const disk = join(dir, 'disk.img');
    await createFlatcarDisk(disk, { size: 64 * MiB });
    await cycle(disk);
  });

  it.runIf(canLoop)('runs the whole cycle on a loop device with 4096-byte sectors', async () => {
    const backing = join(dir, 'disk4k.img');
    await fsp.writeFile(backing, new Uint8Array(64 * MiB));
    await withLoopDevice(backing, { sectorSize: 4096 }, async (dev) => {
      await createFlatcarDisk(dev);
      await cycle(dev);
    });
  });

  it('the CLI: a tampered payload is refused (exit 3) and the slots are left as they were', async () => {
    const disk = join(dir, 'cli.img');
    await createFlatcarDisk(disk, { size: 64 * MiB });
    await fsp.writeFile(join(dir, 'k.pub'), formatPublicKey(signer.pub));
    const bad = Buffer.from(await fsp.readFile(full));
    bad[40] ^= 1;
    await fsp.writeFile(join(dir, 'bad.fpay'), bad);
    const before = await fsp.readFile(disk);
    const r = await runCli(['update', join(dir, 'bad.fpay'), '--disk', disk, '--pubkey', join(dir, 'k.pub'), '--unknown-release', 'allow']);
    expect(r.code).toBe(3);
    expect(Buffer.compare(await fsp.readFile(disk), before)).toBe(0);
    const ok = await runCli(['update', full, '--disk', disk, '--pubkey', join(dir, 'k.pub'), '--unknown-release', 'allow']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/next boot: partition 4 \(USR-B\) once/);
  });
});

describe('update --resume after a power cut', () => {
  it('after the flip: finishes without writing when the slot holds this image; refuses another payload', async () => {
    const disk = join(dir, 'after-flip.img');
    await createFlatcarDisk(disk, { size: 64 * MiB });
    await applyPayload(readPayloadChunks(full), { trustedKeys: [signer.pub], target: disk, targetRange: await slotRange(disk, 3) });
    await updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow' });
    // The power went out here, before update could report. USR-B is set to boot next.
    const before = await fsp.readFile(disk);
    expect(await asyncCodeOf(() => updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow' }))).toBe('USAGE');
    const again = await updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', resume: true });
    expect(again).toMatchObject({ running: { index: 3, how: 'bootloader' }, updated: { index: 4 }, nextBoot: { index: 4 }, apply: { bytesWritten: 0, version: '2.0.0' } });
    expect(Buffer.compare(await fsp.readFile(disk), before), 'nothing written').toBe(0);
    const other = await updateDisk(openPayload(full), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', resume: true }).catch((e: Error) => e);
    expect(other).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/already set to boot next with another image/) });
  });

  it('before the flip: the written image is kept, checked, and the slot flipped', async () => {
    const disk = join(dir, 'before-flip.img');
    await createFlatcarDisk(disk, { size: 64 * MiB });
    await applyPayload(readPayloadChunks(full), { trustedKeys: [signer.pub], target: disk, targetRange: await slotRange(disk, 3) });
    // The image got written into USR-B, then the power went out before the flip.
    await applyPayload(readPayloadChunks(delta), { trustedKeys: [signer.pub], target: disk, targetRange: await slotRange(disk, 4), source: disk, sourceRange: await slotRange(disk, 3) });
    const r = await updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', resume: true });
    expect(r.apply).toMatchObject({ bytesWritten: 0, resumed: { bytesSkipped: v2.length } });
    expect(r.nextBoot).toMatchObject({ bootable: true, index: 4 });
  });
});

describe('update --resume after a flip torn between its GPT writes', () => {
  // The flip writes the backup copy first, then the primary (docs/GPT.md). A cut in between leaves
  // the copies disagreeing: built here by splicing the GPT sectors of the disk before the flip
  // into the disk after it (512-byte sectors: primary = LBA 1-33, backup = the last 33).
  const SECTOR = 512;
  const PRIMARY = { from: SECTOR, length: 33 * SECTOR };
  const backupOf = (size: number) => ({ from: size - 33 * SECTOR, length: 33 * SECTOR });

  for (const torn of ['primary flipped, backup not', 'backup flipped, primary not'] as const) {
    it(`${torn}: plain update refuses (exit 9, nothing written); --resume repairs, finishes, B boots next`, async () => {
      const disk = join(dir, `torn-${torn.split(' ')[0]}.img`);
      await createFlatcarDisk(disk, { size: 64 * MiB });
      await applyPayload(readPayloadChunks(full), { trustedKeys: [signer.pub], target: disk, targetRange: await slotRange(disk, 3) });
      const before = await fsp.readFile(disk);
      await updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', statusPath: join(dir, 'torn-status.json') });
      const after = await fsp.readFile(disk);
      const region = torn === 'primary flipped, backup not' ? backupOf(after.length) : PRIMARY;
      expect(Buffer.compare(before.subarray(region.from, region.from + region.length), after.subarray(region.from, region.from + region.length)), 'the flip changed this copy').not.toBe(0);
      before.copy(after, region.from, region.from, region.from + region.length);
      await fsp.writeFile(disk, after);
      expect((await readDiskGpt(disk)).problems.length).toBeGreaterThan(0);

      const statusPath = join(dir, `torn-${torn.split(' ')[0]}.status.json`);
      expect(await asyncCodeOf(() => updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', statusPath }))).toBe('GPT_CORRUPT');
      expect(Buffer.compare(await fsp.readFile(disk), after), 'nothing written without --resume').toBe(0);

      const r = await updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', statusPath, resume: true });
      expect(r.gptRepaired?.length).toBeGreaterThan(0);
      expect(r).toMatchObject({ updated: { index: 4 }, nextBoot: { bootable: true, index: 4 }, apply: { bytesWritten: 0, version: '2.0.0' } });
      expect((await readDiskGpt(disk)).problems).toEqual([]);
      expect(Buffer.compare(await slotBytes(disk, 4, v2.length), Buffer.from(v2))).toBe(0);
      expect(Buffer.compare(await slotBytes(disk, 3, v1.length), Buffer.from(v1))).toBe(0);
      // Both copies agree and say what the completed update does: B once, then A.
      const again = await updateDisk(openPayload(delta), { disk, trustedKeys: [signer.pub], unknownRelease: 'allow', statusPath, resume: true });
      expect(again.gptRepaired).toBeUndefined();
    });
  }
});

describe('fastpatch update killed (kill -9) at any point, then run again with --resume', () => {
  it('ends with USR-B holding release 2 and booting next, USR-A untouched, every time', async () => {
    await fsp.writeFile(join(dir, 'k2.pub'), formatPublicKey(signer.pub));
    const outcomes: string[] = [];
    for (const delayMs of [60, 140, 220, 300, 380, 460, 600]) {
      const disk = join(dir, `killed-${delayMs}.img`);
      await createFlatcarDisk(disk, { size: 64 * MiB });
      await applyPayload(readPayloadChunks(full), { trustedKeys: [signer.pub], target: disk, targetRange: await slotRange(disk, 3) });
      const args = [CLI_PATH, 'update', delta, '--disk', disk, '--pubkey', join(dir, 'k2.pub'), '--unknown-release', 'allow'];
      const child = spawn(process.execPath, args, { stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
      const code = await exited;
      clearTimeout(timer);
      outcomes.push(code === 0 ? 'finished' : 'killed');
      const again = await runCli(['update', delta, '--disk', disk, '--pubkey', join(dir, 'k2.pub'), '--unknown-release', 'allow', '--resume', '--json']);
      expect(again.code, `killed after ${delayMs} ms: ${again.stderr}`).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ updated: { index: 4 }, nextBoot: { bootable: true, index: 4 } });
      expect(Buffer.compare(await slotBytes(disk, 4, v2.length), Buffer.from(v2)), `killed after ${delayMs} ms`).toBe(0);
      expect(Buffer.compare(await slotBytes(disk, 3, v1.length), Buffer.from(v1))).toBe(0);
      expect((await readDiskGpt(disk)).problems).toEqual([]);
    }
    console.log(`update kill -9 then --resume: ${outcomes.join(', ')}`);
    expect(outcomes).toContain('killed');
  });
});

async function slotRange(disk: string, index: number): Promise<{ offset: number; length: number }> {
  const gpt = await readDiskGpt(disk);
  const e = gpt.table!.entries.find((x) => x.index === index)!;
  return { offset: e.firstLba * gpt.sectorSize, length: (e.lastLba - e.firstLba + 1) * gpt.sectorSize };
}

describe('writing a byte range of a block device that is in use', () => {
  it.runIf(canLoop)('refuses a range of a mounted device, before writing (no O_EXCL is used for ranges)', async () => {
    const backing = join(dir, 'mounted.img');
    await fsp.writeFile(backing, new Uint8Array(32 * MiB));
    execFileSync('mkfs.ext4', ['-q', '-F', backing]);
    await withLoopDevice(backing, {}, async (dev) => {
      await withMount(dev, async () => {
        const before = await fsp.readFile(backing);
        const err = await applyPayload(readPayloadChunks(full), { trustedKeys: [signer.pub], target: dev, targetRange: { offset: 16 * MiB, length: 16 * MiB } }).catch((e: Error) => e);
        expect(String(err)).toMatch(/in use: the whole disk is mounted/);
        expect(Buffer.compare(await fsp.readFile(backing), before)).toBe(0);
      });
    });
  });
});

/** Mounts `device` on a fresh directory for `fn`, always unmounting. */
async function withMount<T>(device: string, fn: (mountpoint: string) => Promise<T>, options: string[] = []): Promise<T> {
  const mnt = await fsp.mkdtemp(join(dir, 'mnt-'));
  execFileSync('mount', [...options, device, mnt]);
  try {
    return await fn(mnt);
  } finally {
    execFileSync('umount', [mnt]);
  }
}

// With the disk's partitions registered in the kernel (partx --add), the slots are written through
// their partition devices, opened exclusively, as on a real device: /dev/sda4, here /dev/loopNp4.
describe('slots as partition devices', () => {
  /** A disk image with v1 (an ext4 image) installed in USR-A, and a delta v1 -> v2 for it. */
  async function ext4Disk(name: string): Promise<{ disk: string; delta: string; v2: Buffer }> {
    const v1Path = join(dir, `${name}-v1.ext4`);
    await fsp.writeFile(v1Path, new Uint8Array(8 * MiB));
    execFileSync('mkfs.ext4', ['-q', '-F', '-U', 'clear', '-E', 'hash_seed=00000000-0000-0000-0000-000000000000', v1Path]);
    const v2Path = join(dir, `${name}-v2.ext4`);
    await fsp.copyFile(v1Path, v2Path);
    const note = join(dir, `${name}-release`);
    await fsp.writeFile(note, 'VERSION=2.0.0\n');
    execFileSync('debugfs', ['-w', '-R', `write ${note} release`, v2Path], { stdio: 'ignore' });
    const deltaPath = join(dir, `${name}.fpay`);
    await generateDeltaPayload({ source: v1Path, target: v2Path, keys: [signer.key], version: '2.0.0', out: deltaPath });
    const disk = join(dir, `${name}.img`);
    await createFlatcarDisk(disk, { size: 64 * MiB });
    const gpt = await readDiskGpt(disk);
    const a = gpt.table!.entries.find((e) => e.index === 3)!;
    const handle = await fsp.open(disk, 'r+');
    try {
      await handle.write(await fsp.readFile(v1Path), 0, 8 * MiB, a.firstLba * gpt.sectorSize);
    } finally {
      await handle.close();
    }
    return { disk, delta: deltaPath, v2: await fsp.readFile(v2Path) };
  }

  it.runIf(canLoop)('updates USR-B through /dev/loopNp4 while USR-A, the running system, is mounted', async () => {
    const { disk, delta: d, v2: want } = await ext4Disk('parts');
    await withPartitionedLoop(disk, {}, async (dev) => {
      await withMount(`${dev}p3`, async (mnt) => {
        const result = await updateDisk(readPayloadChunks(d), { disk: dev, trustedKeys: [signer.pub], unknownRelease: 'allow' });
        expect(result.updated).toEqual({ index: 4, label: 'USR-B', written: `${dev}p4` });
        expect(result.nextBoot).toMatchObject({ bootable: true, index: 4 });
        expect((await fsp.readdir(mnt)).includes('release'), 'the running slot is still v1').toBe(false);
      }, ['-o', 'ro']);
      expect(Buffer.compare((await readHead(`${dev}p4`, want.length)), want)).toBe(0);
      await withMount(`${dev}p4`, async (mnt) => {
        expect(await fsp.readFile(join(mnt, 'release'), 'utf8')).toBe('VERSION=2.0.0\n');
      }, ['-o', 'ro']);
    });
  });

  it.runIf(canLoop)('the running slot is the one in use, not the bootloader\'s pick: USR-B on trial and mounted is never overwritten', async () => {
    const { disk, delta: d } = await ext4Disk('trial');
    const gpt = await readDiskGpt(disk);
    const b = gpt.table!.entries.find((e) => e.index === 4)!;
    const handle = await fsp.open(disk, 'r+');
    try {
      await handle.write(await fsp.readFile(join(dir, 'trial-v1.ext4')), 0, 8 * MiB, b.firstLba * gpt.sectorSize);
    } finally {
      await handle.close();
    }
    // USR-B was set to boot next and GRUB booted it (its one try used): it runs, not yet marked good.
    await changeSlots(disk, (e) => setNext(e, 4), { running: 3 });
    const booted = grubNext((await readDiskGpt(disk)).table!.entries.filter(isUsed));
    await changeSlots(disk, () => booted.entries, { allowUnbootable: true });
    expect(grubNext((await readDiskGpt(disk)).table!.entries).index, "the bootloader's pick is now USR-A").toBe(3);
    await withPartitionedLoop(disk, {}, async (dev) => {
      await withMount(`${dev}p4`, async () => {
        const before = await readHead(dev, 64 * MiB);
        const err = await updateDisk(readPayloadChunks(d), { disk: dev, trustedKeys: [signer.pub], unknownRelease: 'allow' }).catch((e: Error) => e);
        // USR-A is the only fallback of the unconfirmed USR-B: it must not be overwritten. (Taking the
        // bootloader's pick, USR-A, for the running slot would have written the delta over it.)
        expect(err).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/slot USR-A \(partition 3\) boots next and is marked good: it is the running system or its fallback.*running slot taken to be USR-B \(its partition is in use\)/) });
        expect(Buffer.compare(await readHead(dev, 64 * MiB), before)).toBe(0);
      }, ['-o', 'ro']);
    });
  });

  it.runIf(canLoop)('refuses when the passive slot is mounted: the kernel says busy, nothing written, no flip', async () => {
    const { disk, delta: d } = await ext4Disk('busy');
    // USR-B holds a filesystem someone has mounted.
    const gpt = await readDiskGpt(disk);
    const b = gpt.table!.entries.find((e) => e.index === 4)!;
    const handle = await fsp.open(disk, 'r+');
    try {
      await handle.write(await fsp.readFile(join(dir, 'busy-v1.ext4')), 0, 8 * MiB, b.firstLba * gpt.sectorSize);
    } finally {
      await handle.close();
    }
    await withPartitionedLoop(disk, {}, async (dev) => {
      await withMount(`${dev}p4`, async () => {
        const before = await readHead(dev, 64 * MiB);
        // Named: with USR-B mounted and USR-A not, FastPatch would otherwise take USR-B for the running slot.
        const err = await updateDisk(readPayloadChunks(d), { disk: dev, trustedKeys: [signer.pub], unknownRelease: 'allow', running: 'USR-A' }).catch((e: Error) => e);
        expect(err).toMatchObject({ code: 'IO', message: expect.stringMatching(/p4 is in use \(mounted\?\)/) });
        expect(Buffer.compare(await readHead(dev, 64 * MiB), before)).toBe(0);
        // The byte-range path checks the same through sysfs.
        const range = { offset: b.firstLba * gpt.sectorSize, length: (b.lastLba - b.firstLba + 1) * gpt.sectorSize };
        const err2 = await applyPayload(readPayloadChunks(full), { trustedKeys: [signer.pub], target: dev, targetRange: range }).catch((e: Error) => e);
        expect(String(err2)).toMatch(/partition loop\d+p4 is mounted/);
      });
    });
  });
});
