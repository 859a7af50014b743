// Downgrade protection and the slot status record (update/status.ts, format/version.ts): the device
// refuses an older release than the one it runs unless told, a delta made from another release is
// refused before anything is written and names the release it needs, and the record is safe to
// lose (refused unless allowed) and refused when corrupt.
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFlatcarDisk, formatPublicKey, generateDeltaPayload, generateFullPayload, inspectPayload, readDiskGpt, readPayloadChunks, sampleImage, updateDisk,
} from '../../dist/src/index.js';
import { compareVersions } from '../../dist/src/format/version.js';
import { runCli } from '../helpers/cli.js';
import { MiB, Prng, makeKeyPair, removeDir, tempDir } from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
const payload: Record<string, string> = {};

beforeAll(async () => {
  dir = await tempDir('downgrade');
  for (const [name, variant] of [['1.0.0', 1], ['2.0.0', 2], ['1.5.0', 3]] as const) {
    await fsp.writeFile(join(dir, `${name}.img`), sampleImage({ size: 4 * MiB, variant }));
    payload[name] = join(dir, `${name}.fpay`);
    await generateFullPayload({ target: join(dir, `${name}.img`), keys: [signer.key], version: name, out: payload[name] });
  }
  payload.delta = join(dir, 'delta.fpay');
  await generateDeltaPayload({ source: join(dir, '1.0.0.img'), target: join(dir, '2.0.0.img'), keys: [signer.key], version: '2.0.0', sourceVersion: '1.0.0', out: payload.delta });
  await fsp.writeFile(join(dir, 'k.pub'), formatPublicKey(signer.pub));
});
afterAll(() => removeDir(dir));

describe('compareVersions: the order of dpkg --compare-versions', () => {
  const dpkg = spawnSync('dpkg', ['--version']).status === 0;
  it.runIf(dpkg)('agrees with dpkg on fixed and random pairs', () => {
    const fixed = ['1.0.0', '1.0', '1.0.1', '1.10', '1.9', '3815.2.0', '3815.2.1', '3975.0.0', '1.2~rc1', '1.2', '1.2a', '1.2+b1', '01.2', '1.02', '2', '10', '1.0~~', '1.0~'];
    const rng = new Prng(3);
    const parts = ['0', '1', '2', '9', '10', '001', 'a', 'b', 'rc', '~', '.', '+', '_']; // no '-': dpkg takes it for the Debian revision
    const random = Array.from({ length: 60 }, () => {
      let v = String(rng.below(20));
      for (let i = rng.below(6); i > 0; i--) v += parts[rng.below(parts.length)];
      return v;
    });
    const all = [...fixed, ...random];
    let checked = 0;
    for (let i = 0; i < all.length; i++) {
      for (const j of [i + 1, (i * 7 + 3) % all.length]) {
        const a = all[i]!;
        const b = all[j % all.length]!;
        const lt = spawnSync('dpkg', ['--compare-versions', a, 'lt', b]).status === 0;
        const eq = spawnSync('dpkg', ['--compare-versions', a, 'eq', b]).status === 0;
        const ours = Math.sign(compareVersions(a, b));
        expect(ours, `${a} vs ${b}`).toBe(lt ? -1 : eq ? 0 : 1);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(150);
  });

  it('orders releases as people expect', () => {
    expect(compareVersions('1.10.0', '1.9.9')).toBeGreaterThan(0);
    expect(compareVersions('3815.2.0', '3815.2.0')).toBe(0);
    expect(compareVersions('2.0~rc1', '2.0')).toBeLessThan(0);
  });
});

describe('update with a slot status record', () => {
  async function disk(name: string): Promise<string> {
    const path = join(dir, name);
    await createFlatcarDisk(path, { size: 48 * MiB });
    return path;
  }
  const passiveBytes = async (path: string) => {
    const gpt = await readDiskGpt(path);
    const b = gpt.table!.entries.find((e) => e.index === 4)!;
    const all = await fsp.readFile(path);
    return all.subarray(b.firstLba * 512, (b.lastLba + 1) * 512);
  };

  it('records what it installed, refuses an older release (exit 10, slot and GPT untouched), allows it with --allow-downgrade', async () => {
    const d = await disk('record.img');
    const first = await updateDisk(readPayloadChunks(payload['2.0.0']!), { disk: d, trustedKeys: [signer.pub], unknownRelease: 'allow' });
    expect(first.runningVersion).toBeUndefined();
    const record = JSON.parse(await fsp.readFile(`${d}.status.json`, 'utf8'));
    const b = (await readDiskGpt(d)).table!.entries.find((e) => e.index === 4)!;
    expect(record.slots[b.uniqueGuid.toUpperCase()]).toMatchObject({ version: '2.0.0', label: 'USR-B', imageSize: 4 * MiB });
    // USR-B boots and is marked good: it runs release 2.0.0.
    for (const args of [['gpt', 'boot-next', d], ['gpt', 'mark-good', d, '--slot', 'USR-B']]) expect((await runCli(args)).code).toBe(0);
    const disk0 = await fsp.readFile(d);
    const r = await runCli(['update', payload['1.5.0']!, '--disk', d, '--pubkey', join(dir, 'k.pub')]);
    expect(r.code, r.stderr).toBe(10);
    expect(r.stderr.trim().split('\n'), r.stderr).toEqual(['fastpatch: DOWNGRADE: release 1.5.0 is older than release 2.0.0, which the device runs; refusing to downgrade; to install it anyway, run again with --allow-downgrade']);
    expect(Buffer.compare(await fsp.readFile(d), disk0), 'nothing written').toBe(0);
    const ok = await runCli(['update', payload['1.5.0']!, '--disk', d, '--pubkey', join(dir, 'k.pub'), '--allow-downgrade']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/running slot USR-B \(the bootloader's choice\) has release 2\.0\.0/);
  });

  it('a delta from another release: SOURCE_MISMATCH naming the release it needs, before anything is written', async () => {
    const d = await disk('delta.img');
    await updateDisk(readPayloadChunks(payload['1.5.0']!), { disk: d, trustedKeys: [signer.pub], unknownRelease: 'allow' });
    for (const args of [['gpt', 'boot-next', d], ['gpt', 'mark-good', d, '--slot', 'USR-B']]) expect((await runCli(args)).code).toBe(0);
    // USR-B runs 1.5.0; the delta was made from 1.0.0. USR-A is the passive slot now.
    const gpt = await readDiskGpt(d);
    const a = gpt.table!.entries.find((e) => e.index === 3)!;
    const before = (await fsp.readFile(d)).subarray(a.firstLba * 512, (a.lastLba + 1) * 512);
    const err = await updateDisk(readPayloadChunks(payload.delta!), { disk: d, trustedKeys: [signer.pub] }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'SOURCE_MISMATCH', message: expect.stringMatching(/^this delta needs release 1\.0\.0 as its source; the source holds release 1\.5\.0: install the full payload of release [^,]+, or a delta made from release 1\.5\.0$/) });
    const after = (await fsp.readFile(d)).subarray(a.firstLba * 512, (a.lastLba + 1) * 512);
    expect(Buffer.compare(after, before)).toBe(0);
  });

  it('a corrupt record is refused (exit 10, nothing written) even with --unknown-release allow; --allow-downgrade replaces it', async () => {
    const d = await disk('corrupt.img');
    await fsp.writeFile(`${d}.status.json`, '{"format": 1, "slots": ');
    const before = await fsp.readFile(d);
    const refused = await runCli(['update', payload['1.0.0']!, '--disk', d, '--pubkey', join(dir, 'k.pub'), '--unknown-release', 'allow']);
    expect(refused.code, refused.stderr).toBe(10);
    expect(Buffer.compare(await fsp.readFile(d), before)).toBe(0);
    const r = await runCli(['update', payload['1.0.0']!, '--disk', d, '--pubkey', join(dir, 'k.pub'), '--allow-downgrade']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/warning: .*status\.json is not a valid slot status record/);
    expect(JSON.parse(await fsp.readFile(`${d}.status.json`, 'utf8')).format).toBe(1);
    // The slot the update wrote (USR-B) holds release 1.0.0's image.
    const image = await fsp.readFile(join(dir, '1.0.0.img'));
    expect(Buffer.compare((await passiveBytes(d)).subarray(0, image.length), image)).toBe(0);
  });

  it('inspect shows the release a delta needs', async () => {
    const info = await inspectPayload(readPayloadChunks(payload.delta!), [signer.pub]);
    expect(info.source).toMatchObject({ version: '1.0.0' });
    expect(execFileSync('node', ['dist/src/cli.js', 'inspect', payload.delta!], { encoding: 'utf8' })).toMatch(/source: release 1\.0\.0, /);
  });
});
