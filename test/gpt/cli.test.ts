// The `fastpatch gpt` commands as a user runs them: --json output, slots named by number, label
// or unique GUID, next and boot with either bootloader model, and ChromeOS kernel slots made by cgpt.
import { execFileSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { MiB, removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const canLoop = rootOrWarn('gpt commands on loop devices');
let dir: string;
beforeAll(async () => {
  dir = await tempDir('gpt-cli');
});
afterAll(() => removeDir(dir));

const json = async (args: string[]) => {
  const r = await runCli([...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

describe('fastpatch gpt', () => {
  it('show --json, and slots named by number, label or unique GUID', async () => {
    const disk = join(dir, 'd.img');
    expect((await runCli(['gpt', 'create', disk, '--size', '64M'])).code).toBe(0);
    const shown = await json(['gpt', 'show', disk]);
    expect(shown).toMatchObject({ sectorSize: 512, source: 'primary', problems: [], next: { grub: 3 } });
    const b = shown.partitions.find((p: { label: string }) => p.label === 'USR-B');
    expect(b.slot).toEqual({ priority: 0, tries: 0, successful: false });
    for (const name of ['4', 'USR-B', b.uniqueGuid.toLowerCase()]) {
      const r = await json(['gpt', 'set-next', disk, '--slot', name, '--running', 'USR-A']);
      expect(r.partitions.find((p: { index: number }) => p.index === 4)).toMatchObject({ priority: 2, tries: 1, successful: false });
    }
    expect((await runCli(['gpt', 'set-next', disk, '--slot', 'USR-C'])).code).toBe(2);
    expect(await json(['gpt', 'boot', disk, '--dry-run'])).toMatchObject({ model: 'grub', boots: 4, written: false });
    expect(await json(['gpt', 'next', disk])).toMatchObject({ model: 'grub', boots: 4, written: false, usesTry: true });
    expect(await json(['gpt', 'boot', disk])).toMatchObject({ boots: 4, written: true });
    expect(await json(['gpt', 'boot', disk])).toMatchObject({ boots: 3, written: false });
  });

  it('is idempotent: marking good twice, or repairing a healthy disk, leaves the bytes as they are (edge case 30)', async () => {
    const disk = join(dir, 'idem.img');
    expect((await runCli(['gpt', 'create', disk, '--size', '64M'])).code).toBe(0);
    expect((await json(['gpt', 'mark-good', disk, '--slot', 'USR-A'])).sectorsWritten).toBe(0);
    expect((await json(['gpt', 'set-next', disk, '--slot', 'USR-B', '--running', 'USR-A'])).sectorsWritten).toBe(4);
    expect((await json(['gpt', 'mark-good', disk, '--slot', 'USR-B'])).sectorsWritten).toBe(4);
    const before = readFileSync(disk);
    expect((await json(['gpt', 'mark-good', disk, '--slot', 'USR-B'])).sectorsWritten).toBe(0);
    expect(await json(['gpt', 'repair', disk])).toMatchObject({ written: 0 });
    expect(Buffer.compare(readFileSync(disk), before)).toBe(0);
  });

  it('ChromeOS kernel slots made by cgpt: set-next, vboot model, and cgpt reads the result', async () => {
    const disk = join(dir, 'chromeos.img');
    execFileSync('truncate', ['-s', '64M', disk]);
    execFileSync('cgpt', ['create', disk]);
    execFileSync('cgpt', ['boot', '-p', disk], { stdio: 'ignore' }); // the protective MBR, which cgpt create leaves out
    execFileSync('cgpt', ['add', '-i', '2', '-t', 'kernel', '-b', '2048', '-s', '16384', '-l', 'KERN-A', '-P', '1', '-S', '1', disk]);
    execFileSync('cgpt', ['add', '-i', '4', '-t', 'kernel', '-b', '18432', '-s', '16384', '-l', 'KERN-B', '-P', '0', '-S', '0', disk]);
    expect((await runCli(['gpt', 'set-next', disk, '--type', 'chromeos-kernel', '--slot', 'KERN-B', '--tries', '6', '--running', 'KERN-A'])).code).toBe(0);
    const bits = (flag: string) => execFileSync('cgpt', ['show', '-i', '4', flag, disk], { encoding: 'utf8' }).trim();
    expect([bits('-P'), bits('-T'), bits('-S')]).toEqual(['2', '6', '0']);
    expect(await json(['gpt', 'boot', disk, '--type', 'chromeos-kernel', '--model', 'vboot'])).toMatchObject({ model: 'vboot', boots: 4, written: true });
    expect(bits('-T')).toBe('5');
    expect((await runCli(['gpt', 'rollback', disk, '--type', 'chromeos-kernel', '--running', 'KERN-B'])).code).toBe(0);
    expect(execFileSync('cgpt', ['show', '-i', '2', '-P', disk], { encoding: 'utf8' }).trim()).toBe('2');
  });
});

describe('every gpt command on a whole-disk block device', () => {
  // cgpt reads the loop device after each command: P/T/S of USR-A (3) and USR-B (4).
  const pts = (dev: string, i: number) => ['-P', '-T', '-S'].map((f) => execFileSync('cgpt', ['show', '-i', String(i), f, dev], { encoding: 'utf8' }).trim()).join('/');

  for (const sectorSize of [512, 4096]) {
    it.runIf(canLoop)(`${sectorSize}-byte sectors: create, set-next, boot, mark-good, rollback, repair, show`, async () => {
      const backing = join(dir, `loop${sectorSize}.img`);
      await fsp.writeFile(backing, new Uint8Array(64 * MiB));
      await withLoopDevice(backing, { sectorSize }, async (dev) => {
        expect((await runCli(['gpt', 'create', dev])).code).toBe(0);
        expect(pts(dev, 3)).toBe('1/0/1');
        await json(['gpt', 'set-next', dev, '--slot', 'USR-B', '--running', 'USR-A']);
        expect([pts(dev, 3), pts(dev, 4)]).toEqual(['1/0/1', '2/1/0']);
        expect(await json(['gpt', 'boot', dev])).toMatchObject({ boots: 4, written: true });
        expect(pts(dev, 4)).toBe('2/0/0');
        await json(['gpt', 'mark-good', dev, '--slot', 'USR-B']);
        expect(pts(dev, 4)).toBe('2/0/1');
        await json(['gpt', 'rollback', dev, '--running', 'USR-B']);
        expect([pts(dev, 3), pts(dev, 4)], 'USR-A on top again, USR-B its good fallback').toEqual(['2/0/1', '1/0/1']);
        // Break the backup header's CRC: show reports it, set-next refuses, repair fixes it.
        const show = await json(['gpt', 'show', dev]);
        expect(show).toMatchObject({ sectorSize, problems: [], next: { grub: 3 } });
        const handle = await fsp.open(dev, 'r+');
        try {
          await handle.write(Buffer.from([0xff]), 0, 1, (64 * MiB) - sectorSize + 16);
        } finally {
          await handle.close();
        }
        expect((await runCli(['gpt', 'set-next', dev, '--slot', 'USR-B'])).code).toBe(9);
        expect((await json(['gpt', 'repair', dev])).written).toBeGreaterThan(0);
        expect((await json(['gpt', 'show', dev])).problems).toEqual([]);
        const verify = execFileSync('sgdisk', ['-v', dev], { encoding: 'utf8' });
        expect(verify).toContain('No problems found.');
      });
    });
  }
});
