// The same bytes under two names (root, real loop devices): a loop device and its backing file,
// two loop devices over one file, loop devices with offsets and size limits, a partition and its
// disk, a loop device over a loop device, symlinks. A delta's source and target that share bytes
// are refused (USAGE, exit 2) before anything is written, whatever names lead to them; disjoint
// ranges of one file are fine. A target whose bytes are mounted or claimed under another name (a
// loop device over the file, at an offset) is refused (IO, exit 6) and left as it was.
import { execFileSync } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, formatPublicKey, readPayloadChunks, type ApplyOptions } from '../../dist/src/index.js';
import { runCli } from '../helpers/cli.js';
import { buildDelta, xorByte, type BuiltDelta } from '../helpers/delta.js';
import {
  MiB,
  buildPayload,
  expectFastPatchError,
  firstDifference,
  makeKeyPair,
  randomBytes,
  rejectionOf,
  removeDir,
  rootOrWarn,
  tempDir,
  textBytes,
  type BuiltPayload,
} from '../helpers/payloads.js';

const signer = makeKeyPair();
const canRun = rootOrWarn('same-bytes tests');
const hasUnshare = canRun && (() => {
  try {
    execFileSync('sh', ['-c', 'command -v unshare']);
    return true;
  } catch {
    console.warn('skipping the mount namespace test: unshare is missing');
    return false;
  }
})();
const hasTools = canRun && ['sgdisk', 'mkfs.ext4', 'partx'].every((tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`]);
    return true;
  } catch {
    console.warn(`skipping the partition and mount tests: ${tool} is missing`);
    return false;
  }
});

let dir: string;
let d: BuiltDelta;
let full: BuiltPayload;
let source: Uint8Array;
let target: Uint8Array;
let counter = 0;

/** 1 MiB source; the target edits a few blocks of it. */
beforeAll(async () => {
  if (!canRun) return;
  dir = await tempDir('same-bytes');
  source = randomBytes(MiB, 71);
  target = source.slice();
  for (let i = 0; i < 40; i++) xorByte(target, 7919 * i * 3 + 11, 0x3c);
  target.set(textBytes(64 * 1024, 72), 300 * 1024);
  d = await buildDelta(dir, 'fixture', source, target, { keys: [signer.key] });
  full = await buildPayload(dir, 'full', target, { keys: [signer.key] });
});
afterAll(async () => {
  await removeDir(dir);
});

const apply = (payload: string, options: Omit<ApplyOptions, 'trustedKeys'>) => applyPayload(readPayloadChunks(payload), { trustedKeys: [signer.pub], ...options });

/**
 * A file of `size` bytes holding `parts` at their offsets (zeros elsewhere); named `name` (in a
 * folder of its own) when given.
 */
async function fileWith(size: number, parts: [number, Uint8Array][], name?: string): Promise<string> {
  const path = name === undefined ? join(dir, `file-${counter++}.img`) : join(await fsp.mkdtemp(join(dir, 'named-')), name);
  const bytes = new Uint8Array(size);
  for (const [at, part] of parts) bytes.set(part, at);
  await fsp.writeFile(path, bytes);
  return path;
}

/** Runs `fn` with loop devices attached as given (losetup arguments), always detaching them. */
async function withLoops<T>(specs: string[][], fn: (devices: string[]) => Promise<T>): Promise<T> {
  const devices: string[] = [];
  try {
    for (const args of specs) devices.push(execFileSync('losetup', ['--find', '--show', ...args], { encoding: 'utf8' }).trim());
    return await fn(devices);
  } finally {
    for (const device of devices.reverse()) {
      try {
        execFileSync('losetup', ['--detach', device]);
      } catch (err) {
        console.warn(`could not detach ${device}: ${String(err)}`);
      }
    }
  }
}

async function withMount<T>(device: string, fn: () => Promise<T>): Promise<T> {
  const mnt = await fsp.mkdtemp(join(dir, 'mnt-'));
  execFileSync('mount', ['-o', 'ro', device, mnt]);
  try {
    return await fn();
  } finally {
    execFileSync('umount', [mnt]);
  }
}

const bytesOf = async (path: string) => new Uint8Array(await fsp.readFile(path));

/** Expects a USAGE refusal that names the shared bytes, with `file` unchanged. */
async function expectRefusedSame(run: Promise<unknown>, file: string, before: Uint8Array): Promise<void> {
  const err = await rejectionOf(run);
  expectFastPatchError(err, 'USAGE', 2);
  expect(err.message).toMatch(/is the source image .*: both reach bytes \d+\+\d+ of /);
  expect(firstDifference(await bytesOf(file), before), 'the file must be unchanged').toBe(-1);
}

describe.runIf(canRun)('a delta whose source and target share bytes is refused (root)', () => {
  it('--source /dev/loopN --target FILE, where loopN backs FILE', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    const before = await bytesOf(file);
    await withLoops([[file]], async ([loop]) => {
      await expectRefusedSame(apply(d.payloadPath, { source: loop!, target: file }), file, before);
      // And the other way round.
      await expectRefusedSame(apply(d.payloadPath, { source: file, target: loop! }), file, before);
    });
  });

  it('two loop devices over one file', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    const before = await bytesOf(file);
    await withLoops([[file], [file]], async ([a, b]) => {
      await expectRefusedSame(apply(d.payloadPath, { source: a!, target: b! }), file, before);
    });
  });

  it('two loop devices over one file whose windows (-o, --sizelimit) overlap by half', async () => {
    const file = await fileWith(3 * MiB, [[0, source]]);
    const before = await bytesOf(file);
    await withLoops([['--sizelimit', String(MiB), file], ['--offset', String(MiB / 2), '--sizelimit', String(MiB), file]], async ([a, b]) => {
      await expectRefusedSame(apply(d.payloadPath, { source: a!, target: b! }), file, before);
    });
  });

  it('two loop devices over one file with disjoint windows: allowed, each window gets its bytes', async () => {
    const file = await fileWith(2 * MiB, [[0, source]]);
    await withLoops([['--sizelimit', String(MiB), file], ['--offset', String(MiB), '--sizelimit', String(MiB), file]], async ([a, b]) => {
      const result = await apply(d.payloadPath, { source: a!, target: b! });
      expect(result.targetSize).toBe(target.length);
    });
    const after = await bytesOf(file);
    expect(firstDifference(after.subarray(0, MiB), source)).toBe(-1);
    expect(firstDifference(after.subarray(MiB), target)).toBe(-1);
  });

  it('a loop device over a loop device over the file', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    const before = await bytesOf(file);
    await withLoops([[file]], async ([lower]) => {
      await withLoops([[lower!]], async ([upper]) => {
        await expectRefusedSame(apply(d.payloadPath, { source: upper!, target: file }), file, before);
      });
    });
  });

  // The kernel marks a deleted backing file by adding " (deleted)" to its name; a file may be named
  // so, and its loop device must not pass for one over a deleted file.
  it.each(['t1 (deleted)', 'x (deleted) (deleted)', ' (deleted)'])('--source /dev/loopN --target %j, where loopN backs that file', async (name) => {
    const file = await fileWith(MiB, [[0, source]], name);
    const before = await bytesOf(file);
    await withLoops([[file]], async ([loop]) => {
      await expectRefusedSame(apply(d.payloadPath, { source: loop!, target: file }), file, before);
      await expectRefusedSame(apply(d.payloadPath, { source: file, target: loop! }), file, before);
    });
  });

  it('a loop device attached through a hard link removed since', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    const before = await bytesOf(file);
    const link = join(dir, `hardlink-${counter++}.img`);
    await fsp.link(file, link);
    await withLoops([[link]], async ([loop]) => {
      await fsp.rm(link);
      await expectRefusedSame(apply(d.payloadPath, { source: loop!, target: file }), file, before);
    });
  });

  it.runIf(hasUnshare)('a loop device attached in another mount namespace, through a path only that namespace has', async () => {
    const shown = await fsp.mkdtemp(join(dir, 'A-'));
    const hidden = await fsp.mkdtemp(join(dir, 'NS-'));
    const file = join(shown, 't2.img');
    await fsp.writeFile(file, source);
    const before = await bytesOf(file);
    // The bind mount lives and dies with the private namespace; the loop device stays attached.
    const loop = execFileSync('unshare', ['-m', 'sh', '-c', 'mount --bind "$1" "$2" && losetup --find --show "$2/t2.img"', 'sh', shown, hidden], { encoding: 'utf8' }).trim();
    try {
      expect(loop).toMatch(/^\/dev\/loop\d+$/);
      await expectRefusedSame(apply(d.payloadPath, { source: loop, target: file }), file, before);
    } finally {
      execFileSync('losetup', ['--detach', loop]);
    }
  });

  it.runIf(hasUnshare)('a loop device over a loop device, attached in another mount namespace through a path to its node only that namespace has', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    const before = await bytesOf(file);
    await withLoops([[file]], async ([lower]) => {
      const hidden = await fsp.mkdtemp(join(dir, 'NSDEV-'));
      const upper = execFileSync('unshare', ['-m', 'sh', '-c', 'mount --bind /dev "$1" && losetup --find --show "$1/$2"', 'sh', hidden, lower!.slice('/dev/'.length)], { encoding: 'utf8' }).trim();
      try {
        await expectRefusedSame(apply(d.payloadPath, { source: upper, target: file }), file, before);
        await expectRefusedSame(apply(d.payloadPath, { source: upper, target: lower! }), file, before);
      } finally {
        execFileSync('losetup', ['--detach', upper]);
      }
    });
  });

  it('two loop devices over a file that was deleted since', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    await withLoops([[file], [file]], async ([a, b]) => {
      await fsp.rm(file);
      const err = await rejectionOf(apply(d.payloadPath, { source: a!, target: b! }));
      expectFastPatchError(err, 'USAGE', 2);
      expect(err.message).toContain('(deleted)');
    });
  });

  it('a symlink to the source device as the source; a symlink outside /dev as the target is not followed', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    const before = await bytesOf(file);
    await withLoops([[file]], async ([loop]) => {
      const link = join(dir, `link-${counter++}`);
      await fsp.symlink(loop!, link);
      await expectRefusedSame(apply(d.payloadPath, { source: link, target: loop! }), file, before);
      const err = await rejectionOf(apply(d.payloadPath, { source: file, target: link }));
      expectFastPatchError(err, 'USAGE', 2);
      expect(err.message).toMatch(/symbolic link/);
      expect(firstDifference(await bytesOf(file), before)).toBe(-1);
    });
  });

  it.runIf(hasTools)('--source /dev/loopNp2 --target /dev/loopN (a partition and its own disk): refused, GPT and partition intact', async () => {
    const disk = join(dir, `disk-${counter++}.img`);
    await fsp.writeFile(disk, new Uint8Array(8 * MiB));
    execFileSync('sgdisk', ['-n', '1:2048:+2M', '-n', '2:0:+2M', disk], { stdio: 'ignore' });
    const p2 = 2048 * 512 + 2 * MiB;
    const handle = await fsp.open(disk, 'r+');
    await handle.write(source, 0, source.length, p2);
    await handle.close();
    const before = await bytesOf(disk);
    await withLoops([[disk]], async ([loop]) => {
      execFileSync('partx', ['--add', loop!]);
      try {
        await expectRefusedSame(apply(d.payloadPath, { source: `${loop}p2`, target: loop! }), disk, before);
        // The same partition reached through a loop device at its offset.
        await withLoops([['--offset', String(p2), '--sizelimit', String(MiB), disk]], async ([window]) => {
          await expectRefusedSame(apply(d.payloadPath, { source: `${loop}p2`, target: window! }), disk, before);
        });
        // Its neighbour is another slot: allowed.
        await apply(d.payloadPath, { source: `${loop}p2`, target: `${loop}p1` });
      } finally {
        execFileSync('partx', ['--delete', loop!]);
      }
    });
    const after = await bytesOf(disk);
    expect(firstDifference(after.subarray(2048 * 512, 2048 * 512 + target.length), target)).toBe(-1);
    expect(firstDifference(after.subarray(p2), before.subarray(p2))).toBe(-1);
    expect(firstDifference(after.subarray(0, 2048 * 512), before.subarray(0, 2048 * 512)), 'the GPT is untouched').toBe(-1);
  });

  it('via the CLI: exit 2 and one line naming both paths', async () => {
    const file = await fileWith(MiB, [[0, source]]);
    const before = await bytesOf(file);
    const pub = join(dir, `signer-${counter++}.pub`);
    await fsp.writeFile(pub, formatPublicKey(signer.pub));
    await withLoops([[file]], async ([loop]) => {
      const run = await runCli(['apply', d.payloadPath, '--source', loop!, '--target', file, '--pubkey', pub]);
      expect(run.code).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toContain(loop!);
      expect(run.stderr).toContain(file);
    });
    expect(firstDifference(await bytesOf(file), before)).toBe(-1);
  });
});

describe.runIf(canRun)('a target whose bytes are in use under another name is not written (root)', () => {
  /** An ext4 filesystem of `size` bytes. */
  async function ext4(size: number): Promise<Uint8Array> {
    const path = join(dir, `fs-${counter++}.ext4`);
    await fsp.writeFile(path, new Uint8Array(size));
    execFileSync('mkfs.ext4', ['-q', '-F', path], { stdio: 'ignore' });
    return bytesOf(path);
  }

  it.runIf(hasTools).each([undefined, 'fs (deleted)'])('apply --target FILE (named %j) while a loop device over FILE is mounted: IO, FILE unchanged', async (name) => {
    const file = await fileWith(4 * MiB, [[0, await ext4(4 * MiB)]], name);
    const before = await bytesOf(file);
    await withLoops([[file]], async ([loop]) => {
      await withMount(loop!, async () => {
        const err = await rejectionOf(apply(full.payloadPath, { target: file }));
        expectFastPatchError(err, 'IO', 6);
        expect(err.message).toContain(`${loop} (bytes 0+`);
        expect(err.message).toContain('is mounted');
      });
    });
    expect(firstDifference(await bytesOf(file), before)).toBe(-1);
  });

  it.runIf(hasTools)('a slot range of a disk image, mounted through losetup -o OFFSET --sizelimit N: that range refused, another allowed', async () => {
    const slot = 4 * MiB;
    const file = await fileWith(16 * MiB, [[8 * MiB, await ext4(slot)]]);
    const before = await bytesOf(file);
    await withLoops([['--offset', String(8 * MiB), '--sizelimit', String(slot), file]], async ([loop]) => {
      await withMount(loop!, async () => {
        // The mounted range, and a range that only overlaps its first byte.
        for (const offset of [8 * MiB, 8 * MiB - target.length + 512]) {
          const err = await rejectionOf(apply(full.payloadPath, { target: file, targetRange: { offset, length: slot } }));
          expectFastPatchError(err, 'IO', 6);
          expect(err.message).toMatch(/is mounted/);
        }
        expect(firstDifference(await bytesOf(file), before)).toBe(-1);
        // The other slot, disjoint from the mounted one.
        await apply(full.payloadPath, { target: file, targetRange: { offset: 2 * MiB, length: slot } });
      });
    });
    const after = await bytesOf(file);
    expect(firstDifference(after.subarray(2 * MiB, 2 * MiB + target.length), target)).toBe(-1);
    expect(firstDifference(after.subarray(8 * MiB), before.subarray(8 * MiB))).toBe(-1);
  });

  it.runIf(hasTools).each([undefined, 'md (deleted)'])('fastpatch update on a disk image (named %j) whose passive slot is mounted through losetup -o OFFSET --sizelimit N: exit 6, the disk unchanged', async (name) => {
    const disk = name === undefined ? join(dir, `update-${counter++}.img`) : join(await fsp.mkdtemp(join(dir, 'named-')), name);
    const cli = async (args: string[]) => {
      const run = await runCli(args);
      expect(run.code, `fastpatch ${args.join(' ')}: ${run.stderr}`).toBe(0);
      return run.stdout;
    };
    await cli(['gpt', 'create', disk, '--size', '64M']);
    // A fresh disk: USR-A good and booted, so update writes USR-B.
    const { partitions, sectorSize } = JSON.parse(await cli(['gpt', 'show', disk, '--json'])) as { sectorSize: number; partitions: { label: string; firstLba: number; lastLba: number }[] };
    const b = partitions.find((p) => p.label === 'USR-B')!;
    const offset = b.firstLba * sectorSize;
    const length = (b.lastLba - b.firstLba + 1) * sectorSize;
    const handle = await fsp.open(disk, 'r+');
    await handle.write(await ext4(length), 0, length, offset);
    await handle.close();
    const pub = join(dir, `signer-${counter++}.pub`);
    await fsp.writeFile(pub, formatPublicKey(signer.pub));
    const before = await bytesOf(disk);
    await withLoops([['--offset', String(offset), '--sizelimit', String(length), disk]], async ([loop]) => {
      await withMount(loop!, async () => {
        const run = await runCli(['update', full.payloadPath, '--disk', disk, '--pubkey', pub, '--allow-downgrade', '--status', join(dir, `status-${counter++}.json`)]);
        expect(run.code, run.stderr).toBe(6);
        expect(run.stderr).toContain(`${loop} (bytes ${offset}+${length} of ${disk}) is mounted`);
      });
    });
    expect(firstDifference(await bytesOf(disk), before), 'the disk (slot and GPT) must be unchanged').toBe(-1);
  });

  it('a loop device over the file claimed exclusively by another program: IO, unchanged; once released, allowed', async () => {
    const file = await fileWith(2 * MiB, []);
    const before = await bytesOf(file);
    await withLoops([['--offset', String(MiB), file]], async ([loop]) => {
      const held = await fsp.open(loop!, constants.O_RDONLY | constants.O_EXCL);
      try {
        const err = await rejectionOf(apply(full.payloadPath, { target: file, targetRange: { offset: MiB / 2, length: MiB } }));
        expectFastPatchError(err, 'IO', 6);
        expect(err.message).toMatch(/claimed exclusively/);
        expect(firstDifference(await bytesOf(file), before)).toBe(-1);
      } finally {
        await held.close();
      }
      // Attached but unused: a loop device alone is no reason to refuse.
      await apply(full.payloadPath, { target: file, targetRange: { offset: MiB / 2, length: MiB } });
    });
  });
});
