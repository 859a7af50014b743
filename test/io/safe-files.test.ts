// src/io/safe-files.ts: the primitives every file FastPatch creates or reads goes through.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitTemp, createTempBeside, discardTemp, readSmallFile, writeFileAtomically } from '../../dist/src/index.js';
import { asyncCodeOf } from '../helpers/errors.js';
import { removeDir, tempDir } from '../helpers/payloads.js';

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
