// The GPT transaction against other programs and a failing disk (gpt-ab-switching.md §7, cases 18
// and 31): it holds flock on the disk for the whole edit, re-reads the table just before writing
// and stops if it changed, reports an I/O error in the backup phase with the primary untouched, and
// reads back past the page cache.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp, writeSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeSlots, createFlatcarDisk, grubNext, readDiskGpt, setNext, type GptEntry } from '../../dist/src/index.js';
import { directSectorReader, openDisk } from '../../dist/src/disk/disk.js';
import { withDiskLock } from '../../dist/src/disk/lock.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { MiB, removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const canLoop = rootOrWarn('locking tests on loop devices');
let dir: string;
beforeAll(async () => { dir = await tempDir('locking'); });
afterAll(() => removeDir(dir));

const flip = (e: GptEntry[]) => setNext(e, 4);

async function freshDisk(name: string): Promise<string> {
  const disk = join(dir, name);
  await createFlatcarDisk(disk, { size: 32 * MiB });
  return disk;
}

/** `flock` in another process, held until the returned child is killed; resolves once it holds. */
function holdLock(path: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['--exclusive', '--no-fork', path, 'sh', '-c', 'echo held; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.once('data', () => resolve(child));
    child.once('error', reject);
  });
}

/** Exit status of a non-blocking exclusive `flock` attempt by another process: 0 free, 1 held. */
function tryLock(path: string): number {
  try {
    execFileSync('flock', ['--exclusive', '--nonblock', path, 'true']);
    return 0;
  } catch (err) {
    return (err as { status: number }).status;
  }
}

describe('§7.31 the advisory lock', () => {
  it('is held for the whole transaction, seen by flock(1), and released after', async () => {
    const disk = await freshDisk('held.img');
    let during = -1;
    await changeSlots(disk, flip, { beforeWrite: () => { during = tryLock(disk); } });
    expect(during, 'another flock during the edit').toBe(1);
    expect(tryLock(disk), 'after the edit').toBe(0);
  });

  it('waits for, then gives up on, a lock another program holds: IO, nothing written', async () => {
    const disk = await freshDisk('busy.img');
    const before = await fsp.readFile(disk);
    const holder = await holdLock(disk);
    try {
      const started = Date.now();
      expect(await asyncCodeOf(() => changeSlots(disk, flip, { lockWaitSeconds: 1 }))).toBe('IO');
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(Buffer.compare(await fsp.readFile(disk), before)).toBe(0);
    } finally {
      holder.kill();
    }
    await new Promise((r) => holder.once('close', r));
    await changeSlots(disk, flip, { lockWaitSeconds: 1 });
    expect(grubNext((await readDiskGpt(disk)).table!.entries).index).toBe(4);
  });

  it('is released when the work throws', async () => {
    const disk = await freshDisk('throws.img');
    await expect(withDiskLock(disk, async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(tryLock(disk)).toBe(0);
  });

  it('a writer that ignores the lock between the read and the write stops the transaction: GPT_UNSAFE, its bytes kept', async () => {
    const disk = await freshDisk('racer.img');
    const { sectorSize, table } = await readDiskGpt(disk);
    // The intruder changes a byte of the backup header's reserved tail (a sector the flip will rewrite).
    const where = table!.backupHeaderLba * sectorSize + 200;
    const code = await asyncCodeOf(() => changeSlots(disk, flip, {
      beforeWrite: () => {
        const fd = openSync(disk, 'r+');
        try { writeSync(fd, Buffer.from([0x5a]), 0, 1, where); } finally { closeSync(fd); }
      },
    }));
    expect(code).toBe('GPT_UNSAFE');
    const after = await fsp.readFile(disk);
    expect(after[where]).toBe(0x5a);
    const read = await readDiskGpt(disk);
    expect(grubNext(read.table!.entries).index, 'primary untouched: USR-A still boots').toBe(3);
  });
});

describe('§7.18 an I/O error while writing the backup', () => {
  it.runIf(canLoop)('fails at once with IO, no retries, and the primary still holds the old table', async () => {
    const backing = join(dir, 'ioerr.img');
    await fsp.writeFile(backing, new Uint8Array(32 * MiB));
    await withLoopDevice(backing, {}, async (dev) => {
      await createFlatcarDisk(dev);
      const primaryBefore = Buffer.from((await fsp.readFile(backing)).subarray(0, 34 * 512));
      let planned = 0;
      let firstWrite = -1;
      try {
        const err = await changeSlots(dev, flip, {
          beforeWrite: (plan) => {
            planned = plan.flat().length;
            firstWrite = plan[0]![0]!.lba * 512;
            // The kernel refuses every write to a read-only block device (EPERM), as a dying disk would.
            execFileSync('blockdev', ['--setro', dev]);
          },
        }).then(() => undefined, (e: unknown) => e);
        // It stops at the first write of the plan (the backup header), with that write's error: no
        // later write was tried. (No wall-clock bound: a hang would meet the test's timeout.)
        expect(err).toMatchObject({ code: 'IO', message: expect.stringMatching(new RegExp(`^write .* at ${firstWrite}: `)) });
      } finally {
        execFileSync('blockdev', ['--setrw', dev]);
      }
      expect(planned).toBeGreaterThan(0);
      expect(Buffer.compare((await fsp.readFile(backing)).subarray(0, 34 * 512), primaryBefore)).toBe(0);
      const read = await readDiskGpt(dev);
      expect(read.problems).toEqual([]);
      expect(grubNext(read.table!.entries).index).toBe(3);
    });
  });
});

describe('reading back past the page cache', () => {
  it.runIf(canLoop)('directSectorReader sees what the device holds even when the page cache is stale', async () => {
    const backing = join(dir, 'direct.img');
    await fsp.writeFile(backing, new Uint8Array(4 * MiB));
    await withLoopDevice(backing, {}, async (dev) => {
      const disk = await openDisk(dev);
      try {
        const cached = Buffer.alloc(4096);
        await disk.handle.read(cached, 0, 4096, 8192); // fills the loop device's page cache
        // Change the bytes underneath the loop device, bypassing its cache.
        const fd = openSync(backing, 'r+');
        try { writeSync(fd, Buffer.alloc(512, 0xa5), 0, 512, 8192); } finally { closeSync(fd); }
        const direct = directSectorReader(disk);
        try {
          expect(direct.read(16, 1)).toEqual(new Uint8Array(512).fill(0xa5));
        } finally {
          direct.close();
        }
        const again = Buffer.alloc(512);
        await disk.handle.read(again, 0, 512, 8192);
        console.log(`buffered read after the change: ${again[0] === 0xa5 ? 'fresh' : 'stale (page cache)'}; O_DIRECT: fresh`);
      } finally {
        await disk.handle.close();
      }
    });
  });
});
