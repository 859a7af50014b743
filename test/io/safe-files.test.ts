// src/io/safe-files.ts: the primitives every file FastPatch creates or reads goes through.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { commitTemp, createTempBeside, discardTemp, readSmallFile, writeFileAtomically } from '../../dist/src/io/safe-files.js';
import { untrustedFileProblem } from '../../dist/src/io/safe-files.js';
import { runCli } from '../helpers/cli.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { removeDir, rootOrWarn, tempDir, withLoopDevice } from '../helpers/payloads.js';

const canLoop = rootOrWarn('gpt create on a loop device');

// The CLI tests spawn a few processes on a shared, busy machine: allow minutes, assert no speed.
vi.setConfig({ testTimeout: 180_000 });

let dir: string;
const at = (name: string) => join(dir, name);
const VICTIM = 'victim\n';

beforeAll(async () => {
  dir = await tempDir('safe-files');
  await fsp.writeFile(at('victim'), VICTIM);
});
afterAll(async () => {
  await removeDir(dir);
});

describe('createTempBeside / commitTemp / discardTemp', () => {
  it('names are unguessable, in the final name\'s folder, created with the mode asked', async () => {
    const names = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const temp = await createTempBeside(at('out.bin'), 0o600);
      expect(temp.path.startsWith(`${dir}/.out.bin.`)).toBe(true);
      expect(temp.path).toMatch(/\.[0-9a-f]{32}\.tmp$/);
      expect((await fsp.lstat(temp.path)).mode & 0o7777).toBe(0o600);
      names.add(temp.path);
      await discardTemp(temp);
      await expect(fsp.lstat(temp.path)).rejects.toThrow(/ENOENT/);
    }
    expect(names.size).toBe(20);
  });

  it('commit over a symlink at the final name replaces the link, never writes through it', async () => {
    await fsp.symlink(at('victim'), at('linked'));
    const temp = await createTempBeside(at('linked'));
    await temp.handle.writeFile('new\n');
    await commitTemp(temp);
    expect(await fsp.readFile(at('victim'), 'utf8')).toBe(VICTIM);
    expect((await fsp.lstat(at('linked'))).isFile()).toBe(true);
    expect(await fsp.readFile(at('linked'), 'utf8')).toBe('new\n');
  });

  it('noReplace refuses an existing name, a symlink (dangling or not) included, and removes the temporary file', async () => {
    await fsp.symlink(at('victim'), at('nr-link'));
    await fsp.symlink(at('nowhere'), at('nr-dangling'));
    await fsp.writeFile(at('nr-file'), 'old\n');
    for (const name of ['nr-link', 'nr-dangling', 'nr-file']) {
      const temp = await createTempBeside(at(name));
      await temp.handle.writeFile('new\n');
      expect(await asyncCodeOf(() => commitTemp(temp, { noReplace: true }))).toBe('IO');
      await expect(fsp.lstat(temp.path)).rejects.toThrow(/ENOENT/);
    }
    expect(await fsp.readFile(at('victim'), 'utf8')).toBe(VICTIM);
    expect(await fsp.readFile(at('nr-file'), 'utf8')).toBe('old\n');
    await expect(fsp.lstat(at('nowhere'))).rejects.toThrow(/ENOENT/);
  });

  it('a missing folder is an IO error naming the final path, not the temporary one', async () => {
    const err = await createTempBeside(at('missing/x.bin')).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(at('missing/x.bin'));
    expect((err as Error).message).toMatch(/does not exist/);
    expect((err as Error).message).not.toMatch(/\.tmp/);
  });

  it('writeFileAtomically writes whole files with the mode asked and honours noReplace', async () => {
    await writeFileAtomically(at('w.txt'), 'one\n', { mode: 0o600 });
    expect(await fsp.readFile(at('w.txt'), 'utf8')).toBe('one\n');
    expect((await fsp.lstat(at('w.txt'))).mode & 0o7777).toBe(0o600);
    expect(await asyncCodeOf(() => writeFileAtomically(at('w.txt'), 'two\n', { noReplace: true }))).toBe('IO');
    await writeFileAtomically(at('w.txt'), 'three\n');
    expect(await fsp.readFile(at('w.txt'), 'utf8')).toBe('three\n');
    expect((await fsp.readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('readSmallFile', () => {
  it('reads a regular file with its mode and owner', async () => {
    await fsp.writeFile(at('small'), 'hello');
    await fsp.chmod(at('small'), 0o640);
    const f = await readSmallFile(at('small'), 100, 'test file');
    expect(f.bytes.toString()).toBe('hello');
    expect(f.mode).toBe(0o640);
    expect(f.uid).toBe(process.getuid?.());
  });

  // Timeouts only keep a hang from stalling the suite; the assertions are on the outcome.
  it('refuses a FIFO without waiting for a writer', async () => {
    execFileSync('mkfifo', [at('fifo')]);
    const err = await readSmallFile(at('fifo'), 4096, 'key file').catch((e: Error) => e);
    expect((err as Error).message).toMatch(/not a regular file \(a FIFO\)/);
  }, 20_000);

  it('refuses /dev/zero without reading it', async () => {
    const err = await readSmallFile('/dev/zero', 4096, 'key file').catch((e: Error) => e);
    expect((err as Error).message).toMatch(/not a regular file \(a character device\)/);
  }, 20_000);

  it('refuses a file over the cap, and a missing file by name', async () => {
    await fsp.writeFile(at('big'), Buffer.alloc(4097));
    expect(await asyncCodeOf(() => readSmallFile(at('big'), 4096, 'key file'))).toBe('IO');
    expect(((await readSmallFile(at('absent'), 10, 'key file').catch((e: Error) => e)) as Error).message).toContain(at('absent'));
    expect((await readSmallFile(at('big'), 4097, 'key file')).bytes.length).toBe(4097);
  });
});

describe('createTempBeside refuses names no file can be written at, before creating anything (M5, F4)', () => {
  it('an empty name, a trailing "/", an existing folder (also "." and ".."): USAGE naming the given path, never a temporary name', async () => {
    await fsp.mkdir(at('a-folder'));
    for (const name of ['', at('a-folder'), `${at('a-folder')}/`, `${at('new')}/`, join(dir, '.'), join(at('a-folder'), '..')]) {
      const err = await createTempBeside(name).catch((e: Error) => e);
      expect(err, name).toMatchObject({ code: 'USAGE' });
      expect((err as Error).message).not.toMatch(/\.tmp|[0-9a-f]{32}/);
      if (name !== '') expect((err as Error).message).toContain(name);
    }
    expect((await fsp.readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('a folder under /dev, /proc, /sys or /run, also through a symlink (/dev/shm, a link to /run): USAGE, nothing created', async () => {
    const tag = `${process.pid}-${Date.now()}`;
    await fsp.symlink('/run', at('run-link'));
    const names = [`/dev/sdzz${tag}`, `/run/fastpatch-${tag}.img`, `/proc/fastpatch-${tag}`, `/sys/fastpatch-${tag}`, at(`run-link/fastpatch-${tag}.img`)];
    if ((await fsp.stat('/dev/shm').catch(() => undefined))?.isDirectory()) names.push(`/dev/shm/fastpatch-${tag}.img`);
    for (const name of names) {
      const err = await createTempBeside(name).catch((e: Error) => e);
      expect(err, name).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/creates no file under \/dev, \/proc, \/sys, \/run .*a device must exist already; otherwise choose another folder/) });
      expect((err as Error).message).toContain(name);
    }
    for (const folder of ['/dev', '/run', '/dev/shm']) {
      const left = await fsp.readdir(folder).catch(() => [] as string[]);
      expect(left.filter((n) => n.includes(tag)), folder).toEqual([]);
    }
  });

  it('a folder that appears at the final name after the check: the error names the final path, not the temporary one', async () => {
    const temp = await createTempBeside(at('late'));
    await fsp.mkdir(at('late'));
    await fsp.writeFile(at('late/x'), 'x');
    const err = await commitTemp(temp).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'IO' });
    expect((err as Error).message).toContain(at('late'));
    expect((err as Error).message).not.toMatch(/\.tmp|[0-9a-f]{32}/);
    await expect(fsp.lstat(temp.path)).rejects.toThrow(/ENOENT/);
  });

  it('CLI: gpt create and generate refuse /dev, /dev/shm, /run and an existing folder (with --force too), exit 2, nothing created', async () => {
    const tag = `${process.pid}x${Date.now()}`;
    await fsp.mkdir(at('outdir'));
    await fsp.writeFile(at('img'), Buffer.alloc(64 * 1024, 7));
    expect((await runCli(['keygen', '--out', at('gen.key')])).code).toBe(0);
    const runs = [
      ['gpt', 'create', `/dev/sdzz${tag}`, '--size', '64M'],
      ['gpt', 'create', `/run/fastpatch-${tag}.img`, '--size', '64M'],
      ['gpt', 'create', at('outdir'), '--size', '64M', '--force'],
      ['generate', '--target', at('img'), '--key', at('gen.key'), '--version', '1.0.0', '-o', `/dev/sdzy${tag}`],
      ['generate', '--target', at('img'), '--key', at('gen.key'), '--version', '1.0.0', '-o', at('outdir'), '--force'],
      ['generate', '--target', at('img'), '--key', at('gen.key'), '--version', '1.0.0', '-o', `${at('newdir')}/`],
    ];
    if ((await fsp.stat('/dev/shm').catch(() => undefined))?.isDirectory()) runs.push(['gpt', 'create', `/dev/shm/fastpatch-${tag}.img`, '--size', '64M']);
    for (const args of runs) {
      const r = await runCli(args);
      expect([r.code, r.stderr], args.join(' ')).toEqual([2, expect.stringMatching(/^fastpatch: USAGE: /)]);
      expect(r.stderr).not.toMatch(/\.tmp|[0-9a-f]{32}/);
    }
    for (const folder of ['/dev', '/run', '/dev/shm']) {
      const left = await fsp.readdir(folder).catch(() => [] as string[]);
      expect(left.filter((n) => n.includes(tag)), folder).toEqual([]);
    }
    expect(await fsp.readdir(at('outdir'))).toEqual([]);
    expect((await fsp.readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it.runIf(canLoop)('gpt create on an existing block device still writes its table (no file is created)', async () => {
    await fsp.writeFile(at('loop.img'), Buffer.alloc(64 * 1024 * 1024));
    await withLoopDevice(at('loop.img'), {}, async (dev) => {
      const r = await runCli(['gpt', 'create', dev]);
      expect(r.code, r.stderr).toBe(0);
    });
  });
});

describe('untrustedFileProblem: who may write a file that decides trust (F6)', () => {
  const me = process.geteuid?.() ?? 0;
  it('owned by root or you and not writable by group or others: trusted', () => {
    for (const mode of [0o644, 0o600, 0o444, 0o640, 0o604]) {
      expect(untrustedFileProblem('/f', { mode, uid: 0 }, 'public key file')).toBeUndefined();
      expect(untrustedFileProblem('/f', { mode, uid: me }, 'public key file')).toBeUndefined();
    }
  });
  it('writable by group or others, or owned by another user: the problem, saying chown root FILE; chmod go-w FILE', () => {
    for (const mode of [0o666, 0o664, 0o646, 0o622, 0o777, 0o620, 0o602]) {
      expect(untrustedFileProblem('/f', { mode, uid: 0 }, 'update config')).toMatch(/^update config \/f is writable by .*\(mode 0[0-7]{3}\).*chown root \/f; chmod go-w \/f$/);
    }
    expect(untrustedFileProblem('/f', { mode: 0o644, uid: 65534 }, 'slot status record')).toMatch(/^slot status record \/f is owned by uid 65534, not by root or you .*chown root \/f; chmod go-w \/f$/);
  });
  it('a private key: nor readable by group or others', () => {
    expect(untrustedFileProblem('/k', { mode: 0o640, uid: 0 }, 'private key file', { privateKey: true })).toMatch(/chmod 600 \/k/);
    expect(untrustedFileProblem('/k', { mode: 0o600, uid: 0 }, 'private key file', { privateKey: true })).toBeUndefined();
  });
});
