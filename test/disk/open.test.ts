// disk/disk.ts openDisk, the opening of a GPT disk: only a regular file or a block device is opened (a
// FIFO would hang the open); a GPT-editing command follows no symlink and no extra hard link
// outside /dev (a planted link in a shared folder would redirect the write to a file of root's),
// and writes only block devices under /dev, where udev's symlinks are followed.
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDisk } from '../../dist/src/disk/disk.js';
import { runCli } from '../helpers/cli.js';
import { removeDir, rootOrWarn, tempDir } from '../helpers/payloads.js';

let dir: string;
let victim: string;
let victimBytes: Buffer;
let counter = 0;

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCli(args, { timeoutMs: 60_000 });
}

beforeAll(async () => {
  dir = await tempDir('disk-open');
  // The "root-only" disk image a planted link points at.
  const private_ = join(dir, 'root-only');
  await fsp.mkdir(private_, { mode: 0o700 });
  victim = join(private_, 'victim.img');
  const made = await cli(['gpt', 'create', victim, '--size', '64M']);
  expect(made.code, made.stderr).toBe(0);
  // USR-B on trial: each editing command below would write something.
  const next = await cli(['gpt', 'set-next', victim, '--slot', 'USR-B']);
  expect(next.code, next.stderr).toBe(0);
  victimBytes = await fsp.readFile(victim);
});
afterAll(async () => {
  await removeDir(dir);
});

const editing: [string, string[]][] = [
  ['set-next', ['--slot', 'USR-B']],
  ['mark-good', ['--slot', 'USR-A']],
  ['boot', []],
  ['rollback', ['--running', 'USR-B']],
  ['repair', []],
];

describe('a GPT-editing command follows no link planted outside /dev', () => {
  it.each(editing)('gpt %s SYMLINK: exit 2, one line saying to give the real path; the file it points at unchanged', async (command, extra) => {
    const shared = await fsp.mkdtemp(join(dir, 'shared-'));
    const link = join(shared, 'g.img');
    await fsp.symlink(victim, link);
    const run = await cli(['gpt', command, link, ...extra]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/symbolic link: give the path it points to/);
    expect((await fsp.readFile(victim)).equals(victimBytes), 'the victim must be unchanged').toBe(true);
  });

  it.each(editing)('gpt %s HARDLINK (a second name of the file): exit 2; the file unchanged', async (command, extra) => {
    const shared = await fsp.mkdtemp(join(dir, 'shared-'));
    const link = join(shared, 'g.img');
    await fsp.link(victim, link);
    try {
      const run = await cli(['gpt', command, link, ...extra]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/2 names \(hard links\)/);
      expect((await fsp.readFile(victim)).equals(victimBytes)).toBe(true);
    } finally {
      await fsp.rm(link);
    }
  });

  it('a symlinked folder on the way is resolved, the real path works, and reading (gpt show) through a symlink still works', async () => {
    const own = join(dir, `own-${counter++}.img`);
    await fsp.copyFile(victim, own);
    const folderLink = join(dir, `folder-link-${counter++}`);
    await fsp.symlink(dir, folderLink);
    const run = await cli(['gpt', 'set-next', join(folderLink, own.slice(dir.length + 1)), '--slot', 'USR-B']);
    expect(run.code, run.stderr).toBe(0);
    const fileLink = join(dir, `file-link-${counter++}`);
    await fsp.symlink(own, fileLink);
    const show = await cli(['gpt', 'show', fileLink]);
    expect(show.code, show.stderr).toBe(0);
  });

  it('openDisk for writing: a symlink refused (USAGE), the real path opened', async () => {
    const own = join(dir, `own-${counter++}.img`);
    await fsp.copyFile(victim, own);
    const link = join(dir, `link-${counter++}`);
    await fsp.symlink(own, link);
    await expect(openDisk(link, { write: true })).rejects.toMatchObject({ code: 'USAGE' });
    const disk = await openDisk(own, { write: true });
    await disk.handle.close();
    const read = await openDisk(link);
    await read.handle.close();
  });
});

describe('a disk that is not a regular file or a block device is refused before it is opened', () => {
  const canFifo = process.platform === 'linux';
  it.runIf(canFifo).each([['show', []], ['set-next', ['--slot', 'USR-B']], ['next', []], ['mark-good', []]] as [string, string[]][])(
    'gpt %s FIFO: exit 2, one line, no hang',
    async (command, extra) => {
      const fifo = join(dir, `fifo-${counter++}`);
      execFileSync('mkfifo', [fifo]);
      const run = await cli(['gpt', command, fifo, ...extra]);
      expect(run.code, `${run.stderr} (a null exit code means it hung and was killed)`).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toContain('is a FIFO');
    },
    90_000,
  );

  it('a folder, and /dev/null (a character device): exit 2', async () => {
    for (const path of [dir, '/dev/null']) {
      const run = await cli(['gpt', 'show', path]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/is a (folder|character device)/);
    }
  });
});

describe.runIf(rootOrWarn('writing a GPT under /dev'))('under /dev (root)', () => {
  it('a symlink under /dev to an image file is not written (only block devices are, there); to a loop device it is followed', async () => {
    const own = join(dir, `dev-${counter++}.img`);
    await fsp.copyFile(victim, own);
    const before = await fsp.readFile(own);
    const shm = await fsp.mkdtemp('/dev/shm/fastpatch-disk-');
    try {
      const toFile = join(shm, 'file-link');
      await fsp.symlink(own, toFile);
      const refused = await cli(['gpt', 'set-next', toFile, '--slot', 'USR-B']);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/under \/dev only a block device/);
      expect((await fsp.readFile(own)).equals(before)).toBe(true);
      const loop = execFileSync('losetup', ['--find', '--show', own], { encoding: 'utf8' }).trim();
      try {
        const toLoop = join(shm, 'loop-link');
        await fsp.symlink(loop, toLoop);
        const run = await cli(['gpt', 'set-next', toLoop, '--slot', 'USR-B']);
        expect(run.code, run.stderr).toBe(0);
      } finally {
        execFileSync('losetup', ['--detach', loop]);
      }
    } finally {
      await fsp.rm(shm, { recursive: true, force: true });
    }
  });
});
