// A real filesystem update: two releases of a directory tree, each made into a FRESH ext4 image
// with mkfs.ext4 -d (so files move), the delta between the images, applied onto a file and (as
// root) onto a loop device, read from a read-only loop device holding the old image. e2fsck must
// pass on the result and debugfs must read release 2's files from it.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, generateFullPayload, readPayloadChunks } from '../../dist/src/index.js';
import { attachLoopReadOnly, copyMap, deltaOfFiles, e2fsck, ext4File, mkfsExt4, opName, proseBytes, randomEdit, writeTree, xorByte, type BuiltDelta } from '../helpers/delta.js';
import {
  BLOCK, KiB, MiB, Prng, detachLoop, firstDifference, makeKeyPair, mixedImage, patternBytes, randomBytes, readHead,
  removeDir, rootOrWarn, tempDir, textBytes, withLoopDevice,
} from '../helpers/payloads.js';

const IMAGE_SIZE = 24 * MiB;
const UUID = '3f6c2b1e-8d4a-4c7b-9e2f-5a1d0c9b8e71';
const signer = makeKeyPair();
/** A file release 2 keeps as it is, and that moves in the image (files sorting before it were added). */
const MOVED = 'usr/bin/tool-05';
const canUseLoop = rootOrWarn('the ext4 delta onto a loop device');

type Tree = Map<string, Uint8Array>;

/** Release 1: configuration files, programs, libraries, documentation and a database. */
function release1(): Tree {
  const rng = new Prng(401);
  const tree: Tree = new Map();
  for (let i = 0; i < 24; i++) tree.set(`etc/app${i}.conf`, textBytes(rng.between(200, 3000), rng.next32()));
  for (let i = 0; i < 16; i++) {
    const size = rng.between(8, 300) * KiB;
    const bin = randomBytes(size, rng.next32());
    bin.set(textBytes(size >> 2, rng.next32()), size >> 1); // a string table
    tree.set(`usr/bin/tool-${String(i).padStart(2, '0')}`, bin);
  }
  for (let i = 0; i < 6; i++) tree.set(`usr/lib/lib${i}.so`, mixedImage(rng.between(200, 1200) * KiB + rng.below(BLOCK), rng.next32()));
  for (let i = 0; i < 30; i++) tree.set(`usr/share/doc/pkg${i}/README`, proseBytes(rng.between(1, 20) * KiB, rng.next32()));
  tree.set('var/lib/app/data.db', mixedImage(1536 * KiB, rng.next32()));
  return tree;
}

/** Release 2: files removed, added (some sorting first, so allocation shifts), edited and rewritten. */
function release2(r1: Tree): Tree {
  const rng = new Prng(402);
  const tree: Tree = new Map(r1);
  for (const gone of ['usr/bin/tool-03', 'usr/bin/tool-07', ...[2, 5, 11, 17, 23].map((i) => `usr/share/doc/pkg${i}/README`)]) tree.delete(gone);
  tree.set('usr/bin/aaa-new-tool', randomBytes(180 * KiB, rng.next32()));
  for (let i = 0; i < 3; i++) tree.set(`usr/libexec/helper-${i}`, randomBytes(rng.between(20, 90) * KiB, rng.next32()));
  for (let i = 0; i < 4; i++) tree.set(`usr/share/doc/new${i}/README`, proseBytes(rng.between(2, 12) * KiB, rng.next32()));
  for (const conf of [1, 4, 9, 13, 20, 22]) tree.set(`etc/app${conf}.conf`, randomEdit(r1.get(`etc/app${conf}.conf`)!, rng).image);
  const tool = r1.get('usr/bin/tool-01')!.slice();
  for (let i = 0; i < 20; i++) xorByte(tool, rng.below(tool.length), 0x10); // a patched program
  tree.set('usr/bin/tool-01', tool);
  const lib = r1.get('usr/lib/lib2.so')!;
  tree.set('usr/lib/lib2.so', new Uint8Array(Buffer.concat([lib.subarray(0, lib.length >> 1), randomBytes(1000, 403), lib.subarray(lib.length >> 1)])));
  tree.set('usr/lib/lib4.so', mixedImage(900 * KiB, 404)); // rewritten
  const db = r1.get('var/lib/app/data.db')!.slice();
  db.set(randomBytes(3 * BLOCK, 405), 40 * BLOCK);
  tree.set('var/lib/app/data.db', new Uint8Array(Buffer.concat([db, textBytes(100 * KiB, 406)])));
  return tree;
}

let dir: string;
let r1: Tree;
let r2: Tree;
let oldImg: Buffer;
let newImg: Buffer;
let delta: BuiltDelta;
let fullSize: number;

beforeAll(async () => {
  dir = await tempDir('delta-ext4');
  r1 = release1();
  r2 = release2(r1);
  await writeTree(join(dir, 'tree1'), r1);
  await writeTree(join(dir, 'tree2'), r2);
  await mkfsExt4(join(dir, 'old.img'), join(dir, 'tree1'), IMAGE_SIZE, UUID);
  await mkfsExt4(join(dir, 'new.img'), join(dir, 'tree2'), IMAGE_SIZE, UUID);
  oldImg = await fsp.readFile(join(dir, 'old.img'));
  newImg = await fsp.readFile(join(dir, 'new.img'));
  delta = await deltaOfFiles(join(dir, 'old.img'), join(dir, 'new.img'), join(dir, 'delta.fpay'), { keys: [signer.key] });
  fullSize = (await generateFullPayload({ target: join(dir, 'new.img'), keys: [signer.key], version: '2.0.0', out: join(dir, 'full.fpay') })).payload.totalSize;
});
afterAll(async () => {
  await removeDir(dir);
});

/** Checks an ext4 image or device holds release 2: a sample of edited, added, unchanged and removed files. */
function expectRelease2(device: string): void {
  for (const path of ['etc/app4.conf', 'usr/bin/tool-01', 'usr/lib/lib2.so', 'usr/lib/lib4.so', 'usr/bin/aaa-new-tool', 'usr/share/doc/new3/README', 'var/lib/app/data.db', MOVED]) {
    const onDisk = ext4File(device, `/${path}`);
    expect(onDisk, path).toBeDefined();
    expect(firstDifference(onDisk!, r2.get(path)!), path).toBe(-1);
  }
  expect(ext4File(device, '/usr/bin/tool-03')).toBeUndefined();
}

it('both images are clean ext4 filesystems, the same tree makes the same image, and unchanged files moved', async () => {
  expect(e2fsck(join(dir, 'old.img'))).toMatchObject({ code: 0 });
  expect(e2fsck(join(dir, 'new.img'))).toMatchObject({ code: 0 });
  await mkfsExt4(join(dir, 'again.img'), join(dir, 'tree2'), IMAGE_SIZE, UUID);
  expect(firstDifference(await fsp.readFile(join(dir, 'again.img')), newImg)).toBe(-1);
  await fsp.rm(join(dir, 'again.img'));
  // tool-05 is the same file in both releases (its first block random, so found once), at another block of the image.
  const head = r1.get(MOVED)!.subarray(0, BLOCK);
  const [before, after] = [oldImg.indexOf(head), newImg.indexOf(head)];
  expect([before % BLOCK, after % BLOCK, oldImg.indexOf(head, before + 1), newImg.indexOf(head, after + 1)]).toEqual([0, 0, -1, -1]);
  expect(after).not.toBe(before);
});

it('the delta copies moved blocks from where they were and is much smaller than a full payload', () => {
  const types = new Set(delta.manifest.operations.map(opName));
  expect(types.has('SOURCE_COPY')).toBe(true);
  expect(types.has('SOURCE_DIFF')).toBe(true);
  // Every whole block of the unchanged, moved tool-05 is copied from its old place.
  const lib = r1.get(MOVED)!;
  const [from, to] = [oldImg.indexOf(lib.subarray(0, BLOCK)) / BLOCK, newImg.indexOf(lib.subarray(0, BLOCK)) / BLOCK];
  const map = copyMap(delta.manifest);
  const whole = Math.floor(lib.length / BLOCK);
  const copied = Array.from({ length: whole }, (_, i) => map[to + i]);
  expect(whole).toBeGreaterThan(32);
  expect(copied.filter((c, i) => c !== from + i)).toEqual([]);
  console.log(`ext4 delta: ${delta.result.payload.totalSize} bytes, full payload ${fullSize} bytes, ${delta.manifest.operations.length} operations`);
  expect(delta.result.payload.totalSize).toBeLessThan(fullSize * 0.5);
});

it('applied onto a file: e2fsck passes, the bytes are the new image, release 2 reads back', async () => {
  const out = join(dir, 'applied.img');
  await fsp.writeFile(out, patternBytes(IMAGE_SIZE, 0x33));
  await applyPayload(readPayloadChunks(delta.payloadPath), { trustedKeys: [signer.pub], source: join(dir, 'old.img'), target: out });
  expect(firstDifference(await fsp.readFile(out), newImg)).toBe(-1);
  expect(e2fsck(out)).toMatchObject({ code: 0 });
  expectRelease2(out);
  await fsp.rm(out);
});

describe.runIf(canUseLoop)('on loop devices (root)', () => {
  it('from a read-only loop device holding release 1 onto a loop device: e2fsck -fn passes, the device holds release 2', async () => {
    const backing = join(dir, 'slot-b.img');
    const deviceSize = IMAGE_SIZE + MiB;
    const pattern = patternBytes(deviceSize, 0x44);
    await fsp.writeFile(backing, pattern);
    const source = attachLoopReadOnly(join(dir, 'old.img'));
    try {
      await withLoopDevice(backing, {}, async (device) => {
        const result = await applyPayload(readPayloadChunks(delta.payloadPath), { trustedKeys: [signer.pub], source, target: device, checkSource: true });
        expect(result).toMatchObject({ sourceSize: IMAGE_SIZE, targetSize: IMAGE_SIZE });
        const fsck = e2fsck(device);
        expect(fsck.code, fsck.output).toBe(0);
        const onDevice = await readHead(device, deviceSize);
        expect(firstDifference(onDevice.subarray(0, IMAGE_SIZE), newImg)).toBe(-1);
        expect(firstDifference(onDevice.subarray(IMAGE_SIZE), pattern.subarray(IMAGE_SIZE))).toBe(-1);
        expectRelease2(device);
      });
    } finally {
      detachLoop(source);
    }
    // The source device was only read.
    expect(firstDifference(await fsp.readFile(join(dir, 'old.img')), oldImg)).toBe(-1);
  });
});
