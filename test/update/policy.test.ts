// When the running slot's release is unknown, and when the record cannot be written: `update`
// fails closed by default (UNKNOWN_RELEASE=refuse) before anything is written, a damaged record is
// refused whatever the policy, and the record of the new slot is written after the image is
// verified and before the flip, so a failed write leaves the slot not set to boot next and
// --resume finishes the job. Also: one record for a disk reached as a file and as a loop device,
// messages that name the way out, --tries bounds, and a JSON-safe result.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyPayload, createFlatcarDisk, formatPublicKey, generateFullPayload, grubNext, openPayload, readDiskGpt, recordSlotImage, sampleImage, updateDisk, type UpdateOptions,
} from '../../dist/src/index.js';
import { runCli } from '../helpers/cli.js';
import { MiB, isRoot, makeKeyPair, removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const signer = makeKeyPair();
const canLoop = rootOrWarn('update through a loop device and a read-only status folder');
let dir: string;
let pub: string;
const payload: Record<string, string> = {};

beforeAll(async () => {
  dir = await tempDir('policy');
  for (const [name, variant, size] of [['1.0.0', 1, 4 * MiB], ['2.0.0', 2, 4 * MiB], ['3.0.0', 3, 12 * MiB]] as const) {
    await fsp.writeFile(join(dir, `${name}.img`), sampleImage({ size, variant }));
    payload[name] = join(dir, `${name}.fpay`);
    await generateFullPayload({ target: join(dir, `${name}.img`), keys: [signer.key], version: name, out: payload[name] });
  }
  pub = join(dir, 'k.pub');
  await fsp.writeFile(pub, formatPublicKey(signer.pub));
});
afterAll(() => removeDir(dir));

let count = 0;
async function disk(): Promise<string> {
  const path = join(dir, `disk-${count++}.img`);
  await createFlatcarDisk(path, { size: 48 * MiB });
  return path;
}
const update = (d: string, version: string, options: Partial<UpdateOptions> = {}) => updateDisk(openPayload(payload[version]!), { disk: d, trustedKeys: [signer.pub], ...options });
const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: Error) => e);
const cli = (d: string, version: string, ...args: string[]) => runCli(['update', payload[version]!, '--disk', d, '--pubkey', pub, ...args]);
/** The disk boots USR-B, which is marked good: USR-B runs. */
async function bootIntoB(d: string): Promise<void> {
  for (const args of [['gpt', 'boot-next', d], ['gpt', 'mark-good', d, '--slot', 'USR-B']]) expect((await runCli(args)).code).toBe(0);
}
const nextBootIndex = async (d: string) => {
  const next = grubNext((await readDiskGpt(d)).table!.entries);
  return next.bootable ? next.index : null;
};

describe('running release unknown (no record): refused by default, before anything is written', () => {
  it('library: DOWNGRADE naming --unknown-release allow and --allow-downgrade; disk untouched, no record made', async () => {
    const d = await disk();
    const before = await fsp.readFile(d);
    const err = await errorOf(update(d, '2.0.0'));
    expect(err).toMatchObject({ code: 'DOWNGRADE', message: expect.stringMatching(/release of the running slot USR-A \(partition 3\) unknown \(no slot status record .*disk-\d+\.img\.status\.json\).*--unknown-release allow.*--allow-downgrade/) });
    expect(Buffer.compare(await fsp.readFile(d), before), 'nothing written').toBe(0);
    await expect(fsp.stat(`${d}.status.json`)).rejects.toMatchObject({ code: 'ENOENT' });
    // The operator's choice lets a first install through; so does --allow-downgrade.
    expect((await update(d, '2.0.0', { unknownRelease: 'allow' })).status).toMatchObject({ state: 'missing' });
    expect(JSON.parse(await fsp.readFile(`${d}.status.json`, 'utf8')).slots).not.toEqual({});
    const d2 = await disk();
    expect((await update(d2, '2.0.0', { allowDowngrade: true })).updated.index).toBe(4);
  });

  it('a wiped record after an update: an old signed release replayed is refused (exit 10), not installed', async () => {
    const d = await disk();
    await update(d, '2.0.0', { unknownRelease: 'allow' });
    await bootIntoB(d);
    await fsp.rm(`${d}.status.json`);
    const before = await fsp.readFile(d);
    const r = await cli(d, '1.0.0');
    expect(r.code, r.stderr).toBe(10);
    expect(r.stderr).toMatch(/^fastpatch: DOWNGRADE: release of the running slot USR-B \(partition 4\) unknown/);
    expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
  });

  it('a record with no entry for the running slot is "unknown" too', async () => {
    const d = await disk();
    const statusPath = join(dir, 'other-disk.status.json');
    await fsp.writeFile(statusPath, JSON.stringify({ format: 1, slots: { '0A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9': { version: '9.0.0', imageHash: '', imageSize: 1, label: 'USR-A', installed: '2026-01-01T00:00:00Z' } } }));
    expect(await errorOf(update(d, '2.0.0', { statusPath }))).toMatchObject({ code: 'DOWNGRADE', message: expect.stringMatching(/other-disk\.status\.json has no entry for it/) });
  });

  it('CLI: --unknown-release and UNKNOWN_RELEASE in --config; the flag beats the file; bad values are usage errors', async () => {
    const conf = join(dir, 'update.conf');
    await fsp.writeFile(conf, '# device settings\nPCR_POLICY_SERVER=https://pcr\nUNKNOWN_RELEASE=allow\n');
    const d = await disk();
    const refused = await cli(d, '2.0.0', '--config', conf, '--unknown-release', 'refuse');
    expect(refused.code, refused.stderr).toBe(10);
    const ok = await cli(d, '2.0.0', '--config', conf);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/note: .*update\.conf line 2: PCR_POLICY_SERVER is not a FastPatch setting; ignored/);
    expect(ok.stdout).toMatch(/release unknown \(no record in .*\), no downgrade check/);
    const d2 = await disk();
    await fsp.writeFile(conf, 'UNKNOWN_RELEASE=yes\n');
    const badValue = await cli(d2, '2.0.0', '--config', conf);
    expect([badValue.code, badValue.stderr]).toEqual([2, expect.stringMatching(/^fastpatch: USAGE: .*update\.conf line 1: UNKNOWN_RELEASE must be allow or refuse, got "yes"/)]);
    const badFlag = await cli(d2, '2.0.0', '--unknown-release', 'maybe');
    expect(badFlag.code, badFlag.stderr).toBe(2);
    const missing = await cli(d2, '2.0.0', '--config', join(dir, 'nope.conf'), '--unknown-release', 'allow');
    expect([missing.code, missing.stderr]).toEqual([6, expect.stringMatching(/nope\.conf \(--config\) does not exist/)]);
  });
});

describe('a first install that records its release: the first update needs no --unknown-release', () => {
  it('recordSlotImage after writing USR-A: update knows the running release, refuses an older one', async () => {
    const d = await disk();
    const gpt = await readDiskGpt(d);
    const a = gpt.table!.entries.find((e) => e.index === 3)!;
    const installed = await applyPayload(openPayload(payload['2.0.0']!), {
      trustedKeys: [signer.pub], target: d, targetRange: { offset: a.firstLba * 512, length: (a.lastLba - a.firstLba + 1) * 512 },
    });
    expect(await recordSlotImage(d, a, installed)).toBe(`${await fsp.realpath(d)}.status.json`);
    const before = await fsp.readFile(d);
    expect(await errorOf(update(d, '1.0.0'))).toMatchObject({ code: 'DOWNGRADE', message: expect.stringMatching(/older than release 2\.0\.0/) });
    expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
    expect(await update(d, '2.0.0')).toMatchObject({ runningVersion: '2.0.0', status: { state: 'found' } });
    // A damaged record is not silently replaced.
    await fsp.writeFile(`${d}.status.json`, '{');
    await expect(recordSlotImage(d, a, installed)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/not a valid slot status record.*not replaced/) });
  });
});

describe('an unreadable record is refused whatever the policy; --allow-downgrade replaces it', () => {
  for (const [name, content] of [['corrupt JSON', '{"format": 1, "slots": '], ['a wrong field', '{"format":1,"slots":{"0A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9":{"version":1}}}']] as const) {
    it(name, async () => {
      const d = await disk();
      await fsp.writeFile(`${d}.status.json`, content);
      const before = await fsp.readFile(d);
      const r = await cli(d, '2.0.0', '--unknown-release', 'allow');
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toMatch(/is not a valid slot status record: .*could hide a downgrade, so nothing was written.*--allow-downgrade/);
      expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
      expect(await fsp.readFile(`${d}.status.json`, 'utf8')).toBe(content);
      const ok = await cli(d, '2.0.0', '--allow-downgrade');
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/warning: .*not a valid slot status record/);
      expect(JSON.parse(await fsp.readFile(`${d}.status.json`, 'utf8'))).toMatchObject({ format: 1 });
    });
  }

  it('a FIFO or /dev/zero as --status: refused at once, not hung on', async () => {
    const fifo = join(dir, 'status.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const statusPath of [fifo, '/dev/zero']) {
      const d = await disk();
      const r = await cli(d, '2.0.0', '--status', statusPath, '--unknown-release', 'allow');
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toMatch(/not a regular file/);
    }
  });
});

describe('the status record is written as part of the update', () => {
  it('a record that cannot be written (--status under /proc): refused before anything is written', async () => {
    const d = await disk();
    const before = await fsp.readFile(d);
    const err = await errorOf(update(d, '2.0.0', { unknownRelease: 'allow', statusPath: '/proc/fastpatch/status.json' }));
    expect(err).toMatchObject({ code: 'IO', message: expect.stringMatching(/slot status record \/proc\/fastpatch\/status\.json cannot be written .*nothing was written to/) });
    expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
  });

  it.runIf(isRoot)('the record\'s filesystem turns read-only while the slot is written: no flip, a clear error; --resume then finishes', async () => {
    const mnt = await fsp.mkdtemp(join(dir, 'var-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    try {
      const statusPath = join(mnt, 'status.json');
      const d = await disk();
      let remounted = false;
      const err = await errorOf(update(d, '2.0.0', {
        unknownRelease: 'allow',
        statusPath,
        onProgress: () => {
          if (remounted) return;
          remounted = true;
          execFileSync('mount', ['-o', 'remount,ro', mnt]);
        },
      }));
      expect(remounted).toBe(true);
      expect(err).toMatchObject({ code: 'IO', message: expect.stringMatching(/release 2\.0\.0 is written into slot USR-B \(partition 4\) .* and verified, but the slot was NOT set to boot next: .*run again with --resume/) });
      expect(await nextBootIndex(d), 'USR-A still boots: no flip').toBe(3);
      execFileSync('mount', ['-o', 'remount,rw', mnt]);
      const r = await update(d, '2.0.0', { unknownRelease: 'allow', statusPath, resume: true });
      expect(r).toMatchObject({ apply: { bytesWritten: 0 }, nextBoot: { bootable: true, index: 4, label: 'USR-B' } });
      const gpt = await readDiskGpt(d);
      const b = gpt.table!.entries.find((e) => e.index === 4)!;
      expect(JSON.parse(await fsp.readFile(statusPath, 'utf8')).slots[b.uniqueGuid.toUpperCase()]).toMatchObject({ version: '2.0.0', imageSize: 4 * MiB });
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('the passive slot\'s entry is dropped before the slot is overwritten: a failed write leaves no stale entry', async () => {
    const d = await disk();
    await update(d, '1.0.0', { unknownRelease: 'allow' });
    await bootIntoB(d);
    await update(d, '2.0.0'); // USR-B runs 1.0.0 (recorded): 2.0.0 goes into USR-A
    const gpt = await readDiskGpt(d);
    const [a, b] = [3, 4].map((i) => gpt.table!.entries.find((e) => e.index === i)!.uniqueGuid.toUpperCase());
    const record = async () => JSON.parse(await fsp.readFile(`${d}.status.json`, 'utf8')).slots;
    expect(await record()).toMatchObject({ [a!]: { version: '2.0.0', label: 'USR-A' }, [b!]: { version: '1.0.0', label: 'USR-B' } });
    for (const args of [['gpt', 'boot-next', d], ['gpt', 'mark-good', d, '--slot', 'USR-A']]) expect((await runCli(args)).code).toBe(0);
    // USR-A runs 2.0.0; a payload whose data was damaged fails once USR-B is being written.
    const bad = Buffer.from(await fsp.readFile(payload['2.0.0']!));
    bad[bad.length - 1] ^= 0xff;
    await fsp.writeFile(join(dir, 'bad.fpay'), bad);
    const err = await errorOf(updateDisk(openPayload(join(dir, 'bad.fpay')), { disk: d, trustedKeys: [signer.pub] }));
    expect(err).toMatchObject({ code: 'HASH_MISMATCH' });
    expect(await record(), 'USR-B no longer holds 1.0.0: its entry is gone').toEqual({ [a!]: expect.objectContaining({ version: '2.0.0' }) });
    expect(await nextBootIndex(d)).toBe(3);
  });
});

describe('update --resume after the flip ("already installed") follows the same rules', () => {
  it('record lost after the flip: refused by default; allowed, it writes the record again without writing the slot', async () => {
    const d = await disk();
    await update(d, '2.0.0', { unknownRelease: 'allow' }); // as if killed right after the flip
    expect(await nextBootIndex(d)).toBe(4);
    await fsp.rm(`${d}.status.json`);
    const before = await fsp.readFile(d);
    expect(await errorOf(update(d, '2.0.0', { resume: true }))).toMatchObject({ code: 'DOWNGRADE' });
    const r = await update(d, '2.0.0', { resume: true, unknownRelease: 'allow' });
    expect(r).toMatchObject({ apply: { bytesWritten: 0 }, updated: { index: 4, written: `${d} (already written)` }, status: { state: 'missing' } });
    expect(Buffer.compare(await fsp.readFile(d), before), 'the disk is not written').toBe(0);
    const b = (await readDiskGpt(d)).table!.entries.find((e) => e.index === 4)!;
    expect(JSON.parse(await fsp.readFile(`${d}.status.json`, 'utf8')).slots[b.uniqueGuid.toUpperCase()]).toMatchObject({ version: '2.0.0' });
  });
});

describe('one record per disk, reached as a file or as its loop device', () => {
  it.runIf(canLoop)('an update through the file, then an older release through /dev/loopN: refused by the same record', async () => {
    const d = await disk();
    await update(d, '2.0.0', { unknownRelease: 'allow' });
    await bootIntoB(d);
    await withLoopDevice(d, {}, async (dev) => {
      const before = await fsp.readFile(d);
      const r = await cli(dev, '1.0.0');
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toMatch(/release 1\.0\.0 is older than release 2\.0\.0, which the device runs; refusing to downgrade; to install it anyway, run again with --allow-downgrade/);
      expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
      // And the other way: an update through the loop device is what the file's next update sees.
      const ok = await cli(dev, '2.0.0', '--json');
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout).status).toEqual({ path: `${await fsp.realpath(d)}.status.json`, state: 'found' });
    });
  });
});

describe('a record or config another user could write is not believed (F6)', () => {
  /** USR-B runs 2.0.0 (recorded); then the record is replaced by one claiming USR-B holds 0.1, made untrusted by `spoil`. */
  async function plantedRecord(spoil: (path: string) => Promise<void>): Promise<{ d: string; before: Buffer }> {
    const d = await disk();
    await update(d, '2.0.0', { unknownRelease: 'allow' });
    await bootIntoB(d);
    const b = (await readDiskGpt(d)).table!.entries.find((e) => e.index === 4)!;
    const path = `${d}.status.json`;
    const record = JSON.parse(await fsp.readFile(path, 'utf8'));
    record.slots[b.uniqueGuid.toUpperCase()].version = '0.1';
    await fsp.rm(path);
    await fsp.writeFile(path, JSON.stringify(record), { mode: 0o644 });
    await spoil(path);
    return { d, before: await fsp.readFile(d) };
  }
  const cases: [string, boolean, (path: string) => Promise<void>, RegExp][] = [
    ['mode 0666', true, (p) => fsp.chmod(p, 0o666), /writable by group and others \(mode 0666\)/],
    ['mode 0620 (group-writable)', true, (p) => fsp.chmod(p, 0o620), /writable by its group \(mode 0620\)/],
    ['owned by nobody (uid 65534)', isRoot, (p) => fsp.chown(p, 65534, 65534), /owned by uid 65534/],
  ];
  for (const [name, runs, spoil, why] of cases) {
    it.runIf(runs)(`a record claiming the running slot holds 0.1, ${name}: an older signed release is refused (exit 10), not installed`, async () => {
      const { d, before } = await plantedRecord(spoil);
      const r = await cli(d, '1.0.0', '--unknown-release', 'allow');
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toMatch(/chown root .*status\.json; chmod go-w .*status\.json.*could hide a downgrade, so nothing was written/);
      expect(Buffer.compare(await fsp.readFile(d), before), 'nothing written').toBe(0);
    });
  }
  if (!isRoot) console.log('skipped: the nobody-owned record and config tests need root');

  it('the same record, root\'s and 0644, is believed (so the refusals above are about who can write it)', async () => {
    const { d } = await plantedRecord(async () => {});
    const r = await cli(d, '1.0.0');
    expect(r.code, r.stderr).toBe(0);
  });

  for (const [name, runs, spoil] of [['mode 0666', true, (p: string) => fsp.chmod(p, 0o666)], ['owned by nobody (uid 65534)', isRoot, (p: string) => fsp.chown(p, 65534, 65534)]] as const) {
    it.runIf(runs)(`--config ${name} with UNKNOWN_RELEASE=allow: refused (exit 2), not honoured, nothing written`, async () => {
      const conf = join(dir, `untrusted-${name.replace(/\W+/g, '-')}.conf`);
      await fsp.writeFile(conf, 'UNKNOWN_RELEASE=allow\n', { mode: 0o644 });
      await spoil(conf);
      const d = await disk();
      const before = await fsp.readFile(d);
      const r = await cli(d, '2.0.0', '--config', conf);
      expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/^fastpatch: USAGE: update config .*untrusted.*\.conf .*chown root .*; chmod go-w /)]);
      expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
      await expect(fsp.stat(`${d}.status.json`)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  }
});

describe('--sector-size is 512 or 4096 (F8)', () => {
  it.each(['1000', '0', '513', '8192', 'x'])('--sector-size %s: USAGE (exit 2) for gpt create, gpt show and update', async (value) => {
    const image = join(dir, `sector-${value}.img`);
    const d = await disk();
    for (const args of [
      ['gpt', 'create', image, '--size', '64M', '--sector-size', value],
      ['gpt', 'show', d, '--sector-size', value],
      ['update', payload['2.0.0']!, '--disk', d, '--pubkey', pub, '--sector-size', value],
    ]) {
      const r = await runCli(args);
      expect([r.code, r.stderr], args.join(' ')).toEqual([2, expect.stringMatching(/^fastpatch: USAGE: --sector-size /)]);
    }
    await expect(fsp.stat(image)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it.each(['512', '4096'])('--sector-size %s is accepted', async (value) => {
    const r = await runCli(['gpt', 'create', join(dir, `sector-ok-${value}.img`), '--size', '64M', '--sector-size', value]);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe('messages and arguments', () => {
  it('DOWNGRADE names --allow-downgrade', async () => {
    const d = await disk();
    await update(d, '2.0.0', { unknownRelease: 'allow' });
    await bootIntoB(d);
    const r = await cli(d, '1.0.0');
    expect([r.code, r.stderr.trim()]).toEqual([10, 'fastpatch: DOWNGRADE: release 1.0.0 is older than release 2.0.0, which the device runs; refusing to downgrade; to install it anyway, run again with --allow-downgrade']);
  });

  it('TARGET_TOO_SMALL names the slot, the bytes it holds and the bytes the image needs', async () => {
    const d = await disk();
    const before = await fsp.readFile(d);
    const r = await cli(d, '3.0.0', '--unknown-release', 'allow');
    expect(r.code, r.stderr).toBe(7);
    expect(r.stderr.trim()).toBe(`fastpatch: TARGET_TOO_SMALL: slot USR-B (partition 4) holds 11534336 bytes (11.0 MiB), the image needs ${12 * MiB} bytes (12.0 MiB): this disk's slots are too small for this release; use a disk with larger slots (fastpatch gpt create --size)`);
    expect(r.stderr).not.toMatch(/target .*disk-\d+\.img/);
    expect(await nextBootIndex(d)).toBe(3);
    expect(before.length).toBeGreaterThan(0);
  });

  it.each(['0', '16', '99'])('--tries %s: USAGE (exit 2) naming 1-15, before anything is read or written', async (tries) => {
    const d = await disk();
    const before = await fsp.readFile(d);
    const r = await cli(d, '2.0.0', '--unknown-release', 'allow', '--tries', tries);
    expect([r.code, r.stderr.trim()]).toEqual([2, `fastpatch: USAGE: --tries must be 1-15 (boot attempts before the bootloader falls back), got ${tries}`]);
    expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
    await expect(update(d, '2.0.0', { unknownRelease: 'allow', tries: Number(tries) })).rejects.toThrow(RangeError);
  });

  it('the result is JSON-safe (no BigInt): JSON.stringify round-trips it; --json prints it whole', async () => {
    const d = await disk();
    const result = await update(d, '2.0.0', { unknownRelease: 'allow', tries: 3 });
    const walk = (v: unknown): void => {
      expect(typeof v).not.toBe('bigint');
      if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(result);
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
    expect(result.nextBoot).toEqual({ bootable: true, index: 4, label: 'USR-B' });
    const d2 = await disk();
    const r = await cli(d2, '2.0.0', '--unknown-release', 'allow', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ nextBoot: { bootable: true, index: 4, label: 'USR-B' }, updated: { index: 4 }, status: { state: 'missing' }, apply: { version: '2.0.0' } });
  });
});
