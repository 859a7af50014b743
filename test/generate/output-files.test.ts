// Every file `generate` and `keygen` create: made so that a symlink planted by another user
// cannot redirect a root run, under names nobody can guess, never colliding, and one overwrite
// rule (an existing output is refused unless --force / `force: true`).
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FastPatchError, applyPayload, generateDeltaPayload, generateFullPayload, generateKey, inspectPayload, loadKeyFile, publicKeyOf, readPayloadChunks, writeKeyPair } from '../../dist/src/index.js';
import { lines, runCli, stackLines } from '../helpers/cli.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { MiB, mixedImage, removeDir, tempDir } from '../helpers/payloads.js';

// Each test spawns the CLI a few times on a shared, busy machine: allow minutes, assert no speed.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let dir: string;
const at = (name: string) => join(dir, name);
const VICTIM_TEXT = 'a file the attacker wants root to overwrite\n';
const key = generateKey();

beforeAll(async () => {
  dir = await tempDir('output-files');
  await fsp.writeFile(at('v1.img'), mixedImage(MiB + 4096 * 3, 1));
  await fsp.writeFile(at('v2.img'), mixedImage(MiB + 4096 * 3, 2));
  await writeKeyPair(at('release.key'), key);
});
afterAll(async () => {
  await removeDir(dir);
});

/** A fresh folder with a victim file outside it; returns both. */
async function arena(name: string): Promise<{ out: string; victim: string }> {
  const out = at(name);
  await fsp.mkdir(out);
  const victim = at(`${name}-victim.txt`);
  await fsp.writeFile(victim, VICTIM_TEXT);
  return { out, victim };
}

async function expectUntouched(victim: string): Promise<void> {
  expect(await fsp.readFile(victim, 'utf8'), `${victim} must not be written through a symlink`).toBe(VICTIM_TEXT);
}

/** Names in `folder` that are not in `expected`: leftovers such as temporary files. */
async function leftovers(folder: string, expected: readonly string[]): Promise<string[]> {
  return (await fsp.readdir(folder)).filter((n) => !expected.includes(n));
}

/** Checks a payload file is a regular file that verifies whole (every byte) against `key` and holds release `version`. */
async function expectValidPayload(path: string, version: string, source?: string): Promise<void> {
  expect((await fsp.lstat(path)).isFile(), `${path} is a regular file`).toBe(true);
  const result = await applyPayload(readPayloadChunks(path), { trustedKeys: [publicKeyOf(key)], ...(source ? { source } : {}) });
  expect(result.version).toBe(version);
}

/** The release a payload file holds (its signature checked). */
async function versionOf(path: string): Promise<string> {
  return (await inspectPayload(readPayloadChunks(path), [publicKeyOf(key)])).version;
}

describe('generate: temporary files cannot be redirected', () => {
  it('symlinks planted at the old predictable names (OUT.data-PID.tmp, OUT.tmp-PID) are not followed', async () => {
    const { out, victim } = await arena('planted');
    const payload = join(out, 'p.fpay');
    // This process is the one generating: its pid is the one an attacker would guess.
    for (const name of [`${payload}.data-${process.pid}.tmp`, `${payload}.tmp-${process.pid}`, `${payload}.tmp`, `${payload}.data.tmp`]) {
      await fsp.symlink(victim, name);
    }
    // And names of the new temporary files' pattern (.NAME.<32 hex>.tmp): guesses never match.
    for (let i = 0; i < 50; i++) await fsp.symlink(victim, join(out, `.p.fpay.${randomBytes(16).toString('hex')}.tmp`));
    await fsp.symlink(victim, join(out, `.p.fpay.${'0'.repeat(32)}.tmp`));
    await generateFullPayload({ target: at('v1.img'), keys: [key], version: '1.0.0', out: payload });
    await expectUntouched(victim);
    await expectValidPayload(payload, '1.0.0');
    const delta = join(out, 'd.fpay');
    for (const name of [`${delta}.data-${process.pid}.tmp`, `${delta}.tmp-${process.pid}`]) await fsp.symlink(victim, name);
    await generateDeltaPayload({ source: at('v1.img'), target: at('v2.img'), keys: [key], version: '2.0.0', out: delta, workers: 1 });
    await expectUntouched(victim);
    await expectValidPayload(delta, '2.0.0', at('v1.img'));
  });

  it('the CLI (a separate, root process) ignores symlinks at every pid-based name a user could plant', async () => {
    const { out, victim } = await arena('planted-cli');
    const payload = join(out, 'p.fpay');
    // The child's pid is not known in advance: plant the names for the next few hundred pids.
    const last = Number((await fsp.readFile('/proc/sys/kernel/ns_last_pid', 'utf8').catch(() => '0')).trim());
    for (let pid = last + 1; pid < last + 300; pid++) {
      await fsp.symlink(victim, `${payload}.data-${pid}.tmp`);
      await fsp.symlink(victim, `${payload}.tmp-${pid}`);
    }
    const run = await runCli(['generate', '--target', at('v1.img'), '--key', at('release.key'), '--version', '1.0.0', '-o', payload]);
    expect(run.code, run.stderr).toBe(0);
    await expectUntouched(victim);
    await expectValidPayload(payload, '1.0.0');
    // Only the planted symlinks and the payload remain: no temporary file is left behind.
    const left = await leftovers(out, ['p.fpay']);
    for (const name of left) expect((await fsp.lstat(join(out, name))).isSymbolicLink(), name).toBe(true);
  });

  it('a symlink AT the output name is refused without --force, and replaced (not written through) with it', async () => {
    const { out, victim } = await arena('final-link');
    const payload = join(out, 'p.fpay');
    await fsp.symlink(victim, payload);
    const refused = await runCli(['generate', '--target', at('v1.img'), '--key', at('release.key'), '--version', '1.0.0', '-o', payload]);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toMatch(/refusing to overwrite .*p\.fpay.*--force/);
    await expectUntouched(victim);
    expect((await fsp.lstat(payload)).isSymbolicLink()).toBe(true);
    const forced = await runCli(['generate', '--target', at('v1.img'), '--key', at('release.key'), '--version', '1.0.0', '-o', payload, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    await expectUntouched(victim);
    await expectValidPayload(payload, '1.0.0');
    expect(await leftovers(out, ['p.fpay'])).toEqual([]);
  });

  it('N generates running at once into one folder never collide (one process, so one pid)', async () => {
    const { out } = await arena('concurrent');
    const N = 6;
    const runs = Array.from({ length: N }, (_, i) =>
      generateFullPayload({ target: at(i % 2 === 0 ? 'v1.img' : 'v2.img'), keys: [key], version: `1.0.${i}`, out: join(out, `p${i}.fpay`), level: 1 }));
    await Promise.all(runs);
    for (let i = 0; i < N; i++) await expectValidPayload(join(out, `p${i}.fpay`), `1.0.${i}`);
    expect(await leftovers(out, Array.from({ length: N }, (_, i) => `p${i}.fpay`))).toEqual([]);
  });

  it('N generates racing for the same output: with force the file is one whole payload; without, exactly one wins', async () => {
    const { out } = await arena('same-out');
    const N = 5;
    const payload = join(out, 'p.fpay');
    const forced = await Promise.allSettled(Array.from({ length: N }, (_, i) =>
      generateFullPayload({ target: at(i % 2 === 0 ? 'v1.img' : 'v2.img'), keys: [key], version: `1.0.${i}`, out: payload, level: 1, force: true })));
    expect(forced.map((r) => r.status)).toEqual(Array(N).fill('fulfilled'));
    await expectValidPayload(payload, await versionOf(payload));
    expect(await leftovers(out, ['p.fpay'])).toEqual([]);

    const fresh = join(out, 'q.fpay');
    const raced = await Promise.allSettled(Array.from({ length: N }, (_, i) =>
      generateFullPayload({ target: at('v1.img'), keys: [key], version: `2.0.${i}`, out: fresh, level: 1 })));
    expect(raced.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of raced) if (r.status === 'rejected') expect((r.reason as FastPatchError).code).toBe('IO');
    expect(await leftovers(out, ['p.fpay', 'q.fpay'])).toEqual([]);
  });

  it('CLI generates started at once into one folder all succeed and leave no temporary files', async () => {
    const { out } = await arena('concurrent-cli');
    const N = 4;
    const runs = await Promise.all(Array.from({ length: N }, (_, i) =>
      runCli(['generate', '--target', at('v1.img'), '--key', at('release.key'), '--version', `3.0.${i}`, '-o', join(out, `p${i}.fpay`), '--level', '1'])));
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    for (let i = 0; i < N; i++) await expectValidPayload(join(out, `p${i}.fpay`), `3.0.${i}`);
    expect(await leftovers(out, Array.from({ length: N }, (_, i) => `p${i}.fpay`))).toEqual([]);
  });
});

describe('generate: one overwrite rule', () => {
  it('refuses an existing output unless --force, keeping it unchanged, and says so', async () => {
    const { out } = await arena('overwrite');
    const payload = join(out, 'p.fpay');
    await fsp.writeFile(payload, 'precious\n');
    for (const extra of [[], ['--source', at('v1.img')]]) {
      const run = await runCli(['generate', ...extra, '--target', at('v2.img'), '--key', at('release.key'), '--version', '2.0.0', '-o', payload]);
      expect(run.code).toBe(6);
      expect(lines(run.stderr)).toHaveLength(1);
      expect(run.stderr).toContain(payload);
      expect(run.stderr).toContain('--force');
      expect(stackLines(run.stderr)).toEqual([]);
      expect(await fsp.readFile(payload, 'utf8')).toBe('precious\n');
    }
    const forced = await runCli(['generate', '--target', at('v2.img'), '--key', at('release.key'), '--version', '2.0.0', '-o', payload, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    await expectValidPayload(payload, '2.0.0');
    const forcedDelta = await runCli(['generate', '--source', at('v1.img'), '--target', at('v2.img'), '--key', at('release.key'), '--version', '2.0.1', '-o', payload, '--force']);
    expect(forcedDelta.code, forcedDelta.stderr).toBe(0);
    await expectValidPayload(payload, '2.0.1', at('v1.img'));
    expect(await leftovers(out, ['p.fpay'])).toEqual([]);
  });

  it('the library refuses by default too (force: true replaces), for full and delta payloads', async () => {
    const { out } = await arena('overwrite-lib');
    const payload = join(out, 'p.fpay');
    await fsp.writeFile(payload, 'precious\n');
    expect(await asyncCodeOf(() => generateFullPayload({ target: at('v1.img'), keys: [key], version: '1.0.0', out: payload }))).toBe('IO');
    expect(await asyncCodeOf(() => generateDeltaPayload({ source: at('v1.img'), target: at('v2.img'), keys: [key], version: '2.0.0', out: payload, workers: 1 }))).toBe('IO');
    expect(await fsp.readFile(payload, 'utf8')).toBe('precious\n');
    await generateDeltaPayload({ source: at('v1.img'), target: at('v2.img'), keys: [key], version: '2.0.0', out: payload, workers: 1, force: true });
    await expectValidPayload(payload, '2.0.0', at('v1.img'));
    await generateFullPayload({ target: at('v1.img'), keys: [key], version: '1.0.0', out: payload, force: true });
    await expectValidPayload(payload, '1.0.0');
    expect(await leftovers(out, ['p.fpay'])).toEqual([]);
  });
});

describe('a missing output folder', () => {
  it.each([
    ['generate (full)', (o: string) => ['generate', '--target', at('v1.img'), '--key', at('release.key'), '--version', '1.0.0', '-o', o]],
    ['generate (delta)', (o: string) => ['generate', '--source', at('v1.img'), '--target', at('v2.img'), '--key', at('release.key'), '--version', '1.0.0', '-o', o]],
    ['keygen', (o: string) => ['keygen', '--out', o]],
  ])('%s names the path the user gave, not a temporary name', async (_name, args) => {
    const o = at('no-such-folder/sub/out.file');
    const run = await runCli(args(o));
    expect(run.code).toBe(6);
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toContain(o);
    expect(run.stderr).toMatch(/does not exist/);
    expect(run.stderr).not.toMatch(/\.tmp/);
    expect(stackLines(run.stderr)).toEqual([]);
  });
});

describe('keygen: key files cannot be redirected', () => {
  it('symlinks at the old temporary names are ignored; the keys are written, mode 0600 and 0644', async () => {
    const { out, victim } = await arena('keygen-planted');
    const path = join(out, 'k');
    for (const name of [`${path}.tmp-${process.pid}`, `${path}.pub.tmp-${process.pid}`]) await fsp.symlink(victim, name);
    const k = generateKey();
    await writeKeyPair(path, k);
    await expectUntouched(victim);
    expect((await fsp.lstat(path)).mode & 0o7777).toBe(0o600);
    expect((await fsp.lstat(`${path}.pub`)).mode & 0o7777).toBe(0o644);
    expect((await loadKeyFile(path)).kind).toBe('private');
    expect((await loadKeyFile(`${path}.pub`)).kind).toBe('public');
  });

  it('a symlink at the key name is refused without --force and replaced, not followed, with it', async () => {
    const { out, victim } = await arena('keygen-final');
    const path = join(out, 'k');
    await fsp.symlink(victim, path);
    await fsp.symlink(victim, `${path}.pub`);
    const refused = await runCli(['keygen', '--out', path]);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('--force');
    await expectUntouched(victim);
    // A dangling symlink is an existing name too.
    const dangling = join(out, 'd');
    await fsp.symlink(join(out, 'nowhere'), dangling);
    expect((await runCli(['keygen', '--out', dangling])).code).toBe(6);
    await expect(fsp.stat(join(out, 'nowhere'))).rejects.toThrow(/ENOENT/);
    const forced = await runCli(['keygen', '--out', path, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    await expectUntouched(victim);
    expect((await fsp.lstat(path)).isFile()).toBe(true);
    expect((await fsp.lstat(path)).mode & 0o7777).toBe(0o600);
    expect((await loadKeyFile(`${path}.pub`)).kind).toBe('public');
  });
});
