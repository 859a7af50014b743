// Slot changes on real disks (src/disk/transaction.ts, `fastpatch gpt ...`): what cgpt, sgdisk and
// sfdisk read after each step of an update cycle, at 512 and 4096-byte sectors; refusals of corrupt
// tables and unsafe changes; and crash injection: the disk stopped after every single sector write
// of a flip is always the old table or the new one, and always bootable.
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeSlots, findSlot, getSlotBits, grubNext, markGood, readDiskGpt, setNext, vbootNext, type GptEntry } from '../../dist/src/index.js';
import { readGpt } from '../../dist/src/gpt/table.js';
import { commitPlan } from '../../dist/src/gpt/commit.js';
import { writeGptPlan } from '../../dist/src/gpt/table.js';
import { runCli } from '../helpers/cli.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { MiB, removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const USR = '5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6';
const canLoop = rootOrWarn('GPT tests with 4096-byte sectors (loop devices)');
let dir: string;

beforeAll(async () => {
  dir = await tempDir('gpt-cycle');
});
afterAll(() => removeDir(dir));

/** A Flatcar-like disk made by sgdisk: EFI, USR-A (good, booted), USR-B (empty), ROOT. */
async function flatcarDisk(name: string, device?: (path: string) => Promise<void>): Promise<string> {
  const path = join(dir, name);
  await fsp.writeFile(path, new Uint8Array(64 * MiB));
  const args = ['-o', '-n', '1:0:+8M', '-t', '1:EF00', '-c', '1:EFI-SYSTEM', '-n', '3:0:+16M', '-t', `3:${USR}`, '-c', '3:USR-A', '-A', '3:set:56', '-A', '3:set:49',
    '-n', '4:0:+16M', '-t', `4:${USR}`, '-c', '4:USR-B', '-n', '9:0:0', '-c', '9:ROOT'];
  if (device) await device(path);
  else execFileSync('sgdisk', [...args, path], { stdio: 'ignore' });
  return path;
}

/** P/T/S of partition n as cgpt reads them. */
function cgptBits(disk: string, n: number): { priority: number; tries: number; successful: boolean } {
  const read = (flag: string) => Number(execFileSync('cgpt', ['show', '-i', String(n), flag, disk], { encoding: 'utf8' }).trim());
  return { priority: read('-P'), tries: read('-T'), successful: read('-S') === 1 };
}

function sgdiskClean(disk: string): void {
  const r = spawnSync('sgdisk', ['-v', disk], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain('No problems found.');
}

function sfdiskAttrs(disk: string, n: number): string {
  const line = execFileSync('sfdisk', ['--dump', disk], { encoding: 'utf8' }).split('\n').find((l) => new RegExp(`^\\S+?${n} :`).test(l)) ?? '';
  return /attrs="([^"]*)"/.exec(line)?.[1] ?? '';
}

describe('an update cycle, read back by cgpt, sgdisk and sfdisk', () => {
  const run = async (disk: string, sectorSize: number) => {
    const opts = { sectorSize };
    // set-next B while A runs: B tries once, A stays the successful fallback.
    await changeSlots(disk, (e) => setNext(e, findSlot(e, 'USR-B').index), { ...opts, running: 3 });
    const check = async (expectA: object, expectB: object) => {
      const image = disk;
      if (sectorSize === 512) {
        expect(cgptBits(image, 3)).toEqual(expectA);
        expect(cgptBits(image, 4)).toEqual(expectB);
        sgdiskClean(image);
      } else {
        await withLoopDevice(image, { sectorSize }, async (dev) => {
          expect(cgptBits(dev, 3)).toEqual(expectA);
          expect(cgptBits(dev, 4)).toEqual(expectB);
          sgdiskClean(dev);
        });
      }
    };
    await check({ priority: 1, tries: 0, successful: true }, { priority: 2, tries: 1, successful: false });
    if (sectorSize === 512) expect(sfdiskAttrs(disk, 4)).toBe('GUID:49,52');
    // The bootloader boots B once (tries 1 -> 0)...
    const entries = async () => (await readDiskGpt(disk, opts)).table!.entries.filter((e) => e.typeGuid !== '00000000-0000-0000-0000-000000000000');
    const first = grubNext(await entries(), USR);
    expect(first).toMatchObject({ bootable: true, index: 4, written: true });
    await changeSlots(disk, () => first.entries, { ...opts, allowUnbootable: true });
    // ...B fails to come up (never marked good): the next boot falls back to A.
    const second = grubNext(await entries(), USR);
    expect(second).toMatchObject({ bootable: true, index: 3, written: false });
    expect(vbootNext(await entries(), { typeGuids: [USR] })).toMatchObject({ bootable: true, index: 3 });
    // A second update that boots and is marked good sticks.
    await changeSlots(disk, (e) => setNext(e, 4), { ...opts, running: 3 });
    const third = grubNext(await entries(), USR);
    expect(third).toMatchObject({ index: 4 });
    await changeSlots(disk, () => third.entries, { ...opts, allowUnbootable: true });
    await changeSlots(disk, (e) => markGood(e, 4), opts);
    await check({ priority: 1, tries: 0, successful: true }, { priority: 2, tries: 0, successful: true });
    expect(grubNext(await entries(), USR)).toMatchObject({ index: 4, written: false });
  };

  it('512-byte sectors, on the image file', async () => {
    await run(await flatcarDisk('cycle-512.img'), 512);
  });

  it.runIf(canLoop)('4096-byte sectors (made and checked through a loop device)', async () => {
    const disk = await flatcarDisk('cycle-4k.img', async (path) => {
      await withLoopDevice(path, { sectorSize: 4096 }, async (dev) => {
        execFileSync('sgdisk', ['-o', '-n', '1:0:+8M', '-t', '1:EF00', '-n', '3:0:+16M', '-t', `3:${USR}`, '-c', '3:USR-A', '-A', '3:set:56', '-A', '3:set:49',
          '-n', '4:0:+16M', '-t', `4:${USR}`, '-c', '4:USR-B', '-n', '9:0:0', dev], { stdio: 'ignore' });
      });
    });
    await run(disk, 4096);
  });
});

describe('refusals', () => {
  it('a corrupt primary: nothing changes (exit 9, GPT_CORRUPT) until it is repaired', async () => {
    const disk = await flatcarDisk('corrupt.img');
    const bytes = await fsp.readFile(disk);
    bytes[512 + 20] ^= 0xff; // the primary header's CRC field
    await fsp.writeFile(disk, bytes);
    const before = await fsp.readFile(disk);
    const r = await runCli(['gpt', 'set-next', disk, '--slot', 'USR-B']);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/^fastpatch: GPT_CORRUPT: .*gpt repair/);
    expect(Buffer.compare(await fsp.readFile(disk), before)).toBe(0);
  });

  it('a change that would leave the running slot without a fallback, or nothing bootable (GPT_UNSAFE)', async () => {
    const disk = await flatcarDisk('unsafe.img');
    const before = await fsp.readFile(disk);
    expect(await asyncCodeOf(() => changeSlots(disk, (e) => setNext(e, 3), { running: 3 }))).toBe('GPT_UNSAFE');
    expect(await asyncCodeOf(() => changeSlots(disk, (e) => e.map((x) => ({ ...x, attributes: x.index === 3 ? 0n : x.attributes }))))).toBe('GPT_UNSAFE');
    expect(await asyncCodeOf(() => changeSlots(disk, (e) => e.map((x) => ({ ...x, attributes: x.index === 1 ? 1n << 50n : x.attributes }))))).toBe('GPT_UNSAFE');
    expect(Buffer.compare(await fsp.readFile(disk), before)).toBe(0);
    const r = await runCli(['gpt', 'rollback', disk, '--running', 'USR-A']);
    expect(r.code).toBe(9); // USR-B never booted successfully
  });
});

describe('crash injection', () => {
  it('after every sector write of a flip the disk is the old or the new table, bootable by GRUB and vboot', async () => {
    for (const sectorSize of [512, 4096]) {
      const sectors = (64 * MiB) / sectorSize;
      const disk = new Uint8Array(64 * MiB);
      // A table written by the codec itself at this sector size (sgdisk needs a device for 4096).
      const base = readGpt(readerOf(readFileSync(await flatcarDisk(`crash-${sectorSize}.img`))), 512, (64 * MiB) / 512).table!;
      const scale = sectorSize / 512;
      const entrySectors = Math.ceil(16384 / sectorSize);
      const table = {
        ...base,
        firstUsableLba: 2 + entrySectors,
        lastUsableLba: sectors - 2 - entrySectors,
        primaryEntriesLba: 2,
        backupEntriesLba: sectors - 1 - entrySectors,
        backupHeaderLba: sectors - 1,
        entriesBase: undefined,
        lba0: undefined,
        entries: base.entries
          .filter((e) => e.typeGuid !== '00000000-0000-0000-0000-000000000000')
          .map((e) => ({ ...e, firstLba: Math.floor(e.firstLba / scale), lastLba: Math.floor((e.lastLba + 1) / scale) - 1 })),
      };
      for (const r of writeGptPlan(table, sectorSize, sectors)) disk.set(r.bytes, r.lba * sectorSize);
      const read = readerOf(disk, sectorSize);
      const old = readGpt(read, sectorSize, sectors);
      expect(old.problems, JSON.stringify(old.problems)).toEqual([]);
      const oldEntries = old.table!.entries;
      const newEntries = setNext(oldEntries.filter((e) => e.typeGuid !== '00000000-0000-0000-0000-000000000000'), 4);
      const regions = writeGptPlan({ ...old.table!, entries: newEntries }, sectorSize, sectors).filter((r) => r.role !== 'pmbr');
      const plan = commitPlan(regions as never, sectorSize, read);
      const writes = plan.flat();
      expect(writes.map((w) => w.role)).toEqual(['backup-header', 'backup-entries', 'primary-header', 'primary-entries']);
      const state = (entries: GptEntry[] | undefined) => {
        const slots = (entries ?? []).filter((e) => e.index === 3 || e.index === 4).map((e) => getSlotBits(e.attributes));
        return JSON.stringify(slots);
      };
      const oldState = state(oldEntries);
      const newState = state(newEntries);
      const torn = Uint8Array.from(disk);
      for (const [i, w] of writes.entries()) {
        torn.set(w.bytes, w.lba * sectorSize);
        const view = readGpt(readerOf(torn, sectorSize), sectorSize, sectors);
        // The table every reader uses: the primary while it is valid, else the backup.
        expect([oldState, newState], `after write ${i + 1} (${w.role}) at ${sectorSize}-byte sectors`).toContain(state(view.table?.entries));
        // GRUB's strict reader: a CRC-valid primary header whose entries fail must match the backup header.
        if (view.primary.header && !view.primary.valid) {
          expect(view.backup.valid && view.backup.header!.entriesCrc32 === view.primary.header.entriesCrc32, `GRUB would abort after write ${i + 1}`).toBe(true);
        }
        const used = view.table!.entries.filter((e) => e.typeGuid !== '00000000-0000-0000-0000-000000000000');
        expect(grubNext(used, USR).bootable).toBe(true);
        expect(vbootNext(used, { typeGuids: [USR] }).bootable).toBe(true);
      }
      expect(state(readGpt(readerOf(torn, sectorSize), sectorSize, sectors).table!.entries)).toBe(newState);
    }
  });
});

function readerOf(bytes: Uint8Array, sectorSize = 512) {
  return (lba: number, count: number) => bytes.subarray(lba * sectorSize, (lba + count) * sectorSize);
}
