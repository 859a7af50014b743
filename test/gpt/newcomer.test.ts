// The `gpt` commands as a newcomer meets them (issue 11): a file without a GPT is an error that
// says how to make one; rollback is defined by the running slot, so running it twice changes
// nothing more; a command whose name sounds like a query writes nothing; mark-good defaults to the
// running slot; slot labels match in any case; `gpt create` makes the file the asked size or
// nothing at all; labels are printed escaped; the first release goes into USR-A with
// `apply --slot`.
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatPublicKey, readDiskGpt, sampleImage } from '../../dist/src/index.js';
import { writeGptPlan } from '../../dist/src/gpt/table.js';
import { runCli } from '../helpers/cli.js';
import { MiB, buildPayload, makeKeyPair, removeDir, rootOrWarn, tempDir, withLoopDevice, withPartitionedLoop } from '../helpers/payloads.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });
const canLoop = rootOrWarn('apply --slot on a loop device');
const signer = makeKeyPair();
let dir: string;
let pub: string;
beforeAll(async () => {
  dir = await tempDir('gpt-newcomer');
  pub = join(dir, 'k.pub');
  await fsp.writeFile(pub, formatPublicKey(signer.pub));
});
afterAll(() => removeDir(dir));

let n = 0;
/** A new 64 MiB flatcar disk image (USR slots of 15 MiB). */
async function newDisk(size = '64M'): Promise<string> {
  const disk = join(dir, `d${n++}.img`);
  const r = await runCli(['gpt', 'create', disk, '--size', size]);
  expect(r.code, r.stderr).toBe(0);
  return disk;
}
/** Gives partition `index` of an image file a new label, rewriting both GPT copies. */
async function relabel(disk: string, index: number, label: string): Promise<void> {
  const read = await readDiskGpt(disk);
  const table = { ...read.table!, entries: read.table!.entries.map((e) => (e.index === index ? { ...e, label } : e)) };
  const handle = await fsp.open(disk, 'r+');
  try {
    for (const r of writeGptPlan(table, read.sectorSize, read.diskSectors)) await handle.write(r.bytes, 0, r.bytes.length, r.lba * read.sectorSize);
  } finally {
    await handle.close();
  }
  expect((await readDiskGpt(disk)).problems).toEqual([]);
}
const json = async (args: string[]) => {
  const r = await runCli([...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};
const bitsOf = async (disk: string) => {
  const shown = await json(['gpt', 'show', disk]);
  return Object.fromEntries(shown.partitions.filter((p: { slot: unknown }) => p.slot).map((p: { label: string; slot: object }) => [p.label, p.slot]));
};

describe('gpt show', () => {
  it.each([['zeros', 0], ['random bytes', 1]])('on a file of %s (no GPT) is an error that says how to make one', async (_what, fill) => {
    const file = join(dir, `nogpt${fill}.img`);
    await fsp.writeFile(file, fill ? sampleImage({ size: 8 * MiB, variant: 1 }) : new Uint8Array(8 * MiB));
    for (const extra of [[], ['--json']]) {
      const r = await runCli(['gpt', 'show', file, ...extra]);
      expect(r.code, r.stdout).toBe(9);
      expect(r.stderr).toMatch(/no (valid )?GPT/i);
      expect(r.stderr).toContain('fastpatch gpt create');
      expect(r.stdout).not.toContain('nowhere');
    }
  });

  it('on a missing file says it does not exist and how to make a disk image, for every gpt command', async () => {
    const missing = join(dir, 'missing.img');
    for (const args of [['show'], ['next'], ['boot'], ['mark-good'], ['rollback', '--running', 'USR-A'], ['set-next', '--slot', 'USR-B'], ['repair']]) {
      const [command, ...rest] = args;
      const r = await runCli(['gpt', command!, missing, ...rest]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('does not exist');
      expect(r.stderr).toContain('fastpatch gpt create');
    }
    await expect(fsp.stat(missing)).rejects.toThrow();
  });

  it('prints a label with ESC, BEL and a newline escaped; --json keeps the true string', async () => {
    const disk = await newDisk();
    const label = 'X\x1b[31mRED\x07\nfake line';
    await relabel(disk, 6, label);
    const r = await runCli(['gpt', 'show', disk]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/[\x1b\x07]/);
    expect(r.stdout).toContain('X\\x1b[31mRED\\x07\\nfake line');
    expect(r.stdout.split('\n').some((l) => l.startsWith('fake line'))).toBe(false);
    const shown = await json(['gpt', 'show', disk]);
    expect(shown.partitions.find((p: { index: number }) => p.index === 6).label).toBe(label);
  });
});

describe('gpt rollback', () => {
  it('boots the slot that is not the running one: twice is the same as once, and it says which slot boots next', async () => {
    const disk = await newDisk();
    await json(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A']);
    await json(['gpt', 'boot', disk]);
    await json(['gpt', 'mark-good', disk, '--slot', 'USR-B']);
    expect(await bitsOf(disk)).toMatchObject({ 'USR-A': { priority: 1, successful: true }, 'USR-B': { priority: 2, successful: true } });
    const first = await runCli(['gpt', 'rollback', disk, '--running', 'USR-B']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/USR-A boots next/);
    const after = readFileSync(disk);
    const second = await runCli(['gpt', 'rollback', disk, '--running', 'USR-B']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/USR-A boots next/);
    expect(Buffer.compare(readFileSync(disk), after), 'a second rollback writes nothing').toBe(0);
    expect((await json(['gpt', 'show', disk])).next.grub).toBe(3);
  });

  it('on an image file nobody runs, asks which slot runs instead of guessing (a guess would toggle)', async () => {
    const disk = await newDisk();
    await json(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A']);
    await json(['gpt', 'mark-good', disk, '--slot', 'USR-B']);
    const before = readFileSync(disk);
    const r = await runCli(['gpt', 'rollback', disk]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--running');
    expect(Buffer.compare(readFileSync(disk), before)).toBe(0);
  });

  it('refuses a slot that never booted successfully, saying how to keep the running one', async () => {
    const disk = await newDisk();
    await json(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A']);
    const r = await runCli(['gpt', 'rollback', disk, '--running', 'USR-A']);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/USR-B/);
    expect(r.stderr).toContain('mark-good');
  });
});

describe('gpt next and gpt boot', () => {
  it('`next` is a query that writes nothing; `boot` writes the tries update; `boot-next` still works, with a note', async () => {
    const disk = await newDisk();
    await json(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A']);
    const before = readFileSync(disk);
    for (const model of ['grub', 'vboot']) {
      const r = await runCli(['gpt', 'next', disk, '--model', model]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/USR-B/);
      expect(r.stdout).toMatch(/nothing written/);
    }
    expect(await json(['gpt', 'next', disk])).toMatchObject({ boots: 4, label: 'USR-B', written: false });
    expect(Buffer.compare(readFileSync(disk), before), '`next` wrote nothing').toBe(0);
    expect(await json(['gpt', 'boot', disk])).toMatchObject({ boots: 4, written: true });
    expect((await bitsOf(disk))['USR-B']).toMatchObject({ tries: 0 });
    const old = await runCli(['gpt', 'boot-next', disk, '--dry-run']);
    expect(old.code, old.stderr).toBe(0);
    expect(old.stderr).toMatch(/deprecated.*gpt boot/);
  });
});

describe('gpt mark-good', () => {
  it('without --slot marks the running slot and says which', async () => {
    const disk = await newDisk();
    const r = await runCli(['gpt', 'mark-good', disk]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/marked USR-A good/);
  });

  it('without --slot does not cancel an update waiting for its reboot', async () => {
    const disk = await newDisk();
    await json(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A']);
    const before = readFileSync(disk);
    const r = await runCli(['gpt', 'mark-good', disk]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/USR-B is set to boot next on trial.*--slot USR-A/);
    expect(Buffer.compare(readFileSync(disk), before)).toBe(0);
  });

  it('without --slot refuses to guess between a slot that used its last try and the other', async () => {
    const disk = await newDisk();
    await json(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A']);
    await json(['gpt', 'boot', disk]);
    const before = readFileSync(disk);
    const r = await runCli(['gpt', 'mark-good', disk]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--slot');
    expect(Buffer.compare(readFileSync(disk), before)).toBe(0);
  });
});

describe('slot names', () => {
  it('match labels in any case; two labels equal but for case are ambiguous', async () => {
    const disk = await newDisk();
    const r = await json(['gpt', 'set-next', disk, '--slot', 'usr-b', '--running', 'Usr-A']);
    expect(r.partitions.find((p: { index: number }) => p.index === 4)).toMatchObject({ priority: 2, tries: 1 });
    await relabel(disk, 6, 'usr-b');
    for (const name of ['usr-b', 'USR-B']) {
      const amb = await runCli(['gpt', 'mark-good', disk, '--slot', name]);
      expect(amb.code).toBe(2);
      expect(amb.stderr).toMatch(/2 partitions/);
    }
  });
});

describe('gpt set-next --tries', () => {
  it.each(['0', '16', '99'])('--tries %s is a usage error naming the range 1-15', async (tries) => {
    const disk = await newDisk();
    const r = await runCli(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A', '--tries', tries]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('1-15');
  });
});

describe('gpt create', () => {
  const leftovers = async () => (await fsp.readdir(dir)).filter((f) => f.endsWith('.tmp'));

  it('--force --size makes the file the asked size, larger or smaller', async () => {
    const disk = await newDisk('64M');
    for (const [size, bytes] of [['128M', 128 * MiB], ['48M', 48 * MiB]] as const) {
      const r = await runCli(['gpt', 'create', disk, '--size', size, '--force']);
      expect(r.code, r.stderr).toBe(0);
      expect((await fsp.stat(disk)).size).toBe(bytes);
      const read = await readDiskGpt(disk);
      expect(read.problems).toEqual([]);
      expect(read.table!.backupHeaderLba).toBe(bytes / 512 - 1);
    }
  });

  it.each(['31M', '1M', '4096', '32767K'])('--size %s is a usage error naming the minimum, and leaves nothing behind', async (size) => {
    const disk = join(dir, `small-${size}.img`);
    const r = await runCli(['gpt', 'create', disk, '--size', size]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('32 MiB');
    await expect(fsp.stat(disk)).rejects.toThrow();
    expect(await leftovers()).toEqual([]);
  });

  it('says how big each slot is', async () => {
    const r = await runCli(['gpt', 'create', join(dir, 'sized.img'), '--size', '64M']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/USR-A.*15\.0 MiB/);
    expect(r.stdout).toMatch(/1 GiB/);
  });

  it('never writes through a symlink at the name', async () => {
    const victim = join(dir, 'victim');
    const precious = Buffer.alloc(40 * MiB, 'precious');
    await fsp.writeFile(victim, precious);
    const link = join(dir, 'link.img');
    await fsp.symlink(victim, link);
    for (const extra of [[], ['--force']]) {
      const r = await runCli(['gpt', 'create', link, '--size', '64M', ...extra]);
      expect(r.code).not.toBe(0);
      expect(Buffer.compare(await fsp.readFile(victim), precious)).toBe(0);
    }
    expect(await leftovers()).toEqual([]);
  });

  it('refuses an existing file without --force, leaving it as it was', async () => {
    const file = join(dir, 'exists.img');
    await fsp.writeFile(file, 'data');
    const r = await runCli(['gpt', 'create', file, '--size', '64M']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--force');
    expect(await fsp.readFile(file, 'utf8')).toBe('data');
  });
});

describe('first install: apply --slot', () => {
  let image: Uint8Array;
  let payload: string;
  beforeAll(async () => {
    image = sampleImage({ size: 4 * MiB, variant: 1 });
    payload = (await buildPayload(dir, 'rel1', image, { keys: [signer.key], version: '1.0.0' })).payloadPath;
  });

  const slotBytes = async (disk: string, label: string) => {
    const { table, sectorSize } = await readDiskGpt(disk);
    const e = table!.entries.find((x) => x.label === label)!;
    const h = await fsp.open(disk, 'r');
    try {
      const b = Buffer.alloc((e.lastLba - e.firstLba + 1) * sectorSize);
      await h.read(b, 0, b.length, e.firstLba * sectorSize);
      return b;
    } finally {
      await h.close();
    }
  };

  it('writes the image into USR-A of a fresh disk, and nothing else; a second time is refused', async () => {
    const disk = await newDisk();
    const gpt = (await fsp.readFile(disk)).subarray(0, 64 * 1024);
    const r = await runCli(['apply', payload, '--target', disk, '--slot', 'usr-a', '--pubkey', pub]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/USR-A/);
    expect(r.stdout).toMatch(/boots next/);
    const a = await slotBytes(disk, 'USR-A');
    expect(Buffer.compare(a.subarray(0, image.length), image)).toBe(0);
    expect(a.subarray(image.length).every((b) => b === 0)).toBe(true);
    expect((await slotBytes(disk, 'USR-B')).every((b) => b === 0)).toBe(true);
    expect(Buffer.compare((await fsp.readFile(disk)).subarray(0, 64 * 1024), gpt)).toBe(0);
    expect((await readDiskGpt(disk)).problems).toEqual([]);
    const before = readFileSync(disk);
    const again = await runCli(['apply', payload, '--target', disk, '--slot', 'USR-A', '--pubkey', pub]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/USR-A.*boots next/);
    expect(Buffer.compare(readFileSync(disk), before)).toBe(0);
    // The passive slot may be written (as update does, without the flip).
    expect((await runCli(['apply', payload, '--target', disk, '--slot', 'USR-B', '--pubkey', pub])).code).toBe(0);
  });

  it('refuses a partition that is not a slot, a missing disk, and an image larger than the slot (naming the slot)', async () => {
    const disk = await newDisk();
    const root = await runCli(['apply', payload, '--target', disk, '--slot', 'ROOT', '--pubkey', pub]);
    expect(root.code).toBe(2);
    expect(root.stderr).toMatch(/not an? .*slot/);
    const missing = await runCli(['apply', payload, '--target', join(dir, 'none.img'), '--slot', 'USR-A', '--pubkey', pub]);
    expect(missing.code).not.toBe(0);
    await expect(fsp.stat(join(dir, 'none.img'))).rejects.toThrow();
    const big = (await buildPayload(dir, 'big', sampleImage({ size: 20 * MiB, variant: 2 }), { keys: [signer.key] })).payloadPath;
    const r = await runCli(['apply', big, '--target', disk, '--slot', 'USR-A', '--pubkey', pub]);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('USR-A');
  });

  it.runIf(canLoop)('never writes a slot whose partition is mounted (the running system), even on a new disk', async () => {
    const disk = await newDisk();
    const mnt = await fsp.mkdtemp(join(dir, 'mnt-'));
    await withPartitionedLoop(disk, {}, async (dev) => {
      execFileSync('mkfs.ext4', ['-q', `${dev}p3`]);
      execFileSync('mount', [`${dev}p3`, mnt]);
      try {
        const before = await slotBytes(dev, 'USR-A');
        const r = await runCli(['apply', payload, '--target', dev, '--slot', 'USR-A', '--pubkey', pub]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/USR-A.*in use.*mounted/);
        expect(Buffer.compare(await slotBytes(dev, 'USR-A'), before)).toBe(0);
      } finally {
        execFileSync('umount', [mnt]);
      }
    });
  });

  it.runIf(canLoop)('on a loop device: the byte range without kernel partitions, the partition device with them', async () => {
    for (const partitioned of [false, true]) {
      const disk = await newDisk();
      const attach = partitioned ? withPartitionedLoop : withLoopDevice;
      await attach(disk, {}, async (dev) => {
        const r = await runCli(['apply', payload, '--target', dev, '--slot', 'USR-A', '--pubkey', pub]);
        expect(r.code, r.stderr).toBe(0);
        if (partitioned) expect(r.stdout).toContain(`${dev}p3`);
      });
      expect(Buffer.compare((await slotBytes(disk, 'USR-A')).subarray(0, image.length), image)).toBe(0);
    }
  });
});
