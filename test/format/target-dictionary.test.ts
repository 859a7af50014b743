// SOURCE_ZSTD with a target dictionary (format 2): earlier target blocks, named by extents, join
// the operation's zstd dictionary. The applier reads them back from the target once the operations
// before are written (verify keeps them in a private temporary file; src/apply/target-blocks.ts),
// checks them against the signed hash, and refuses a manifest that reaches outside what earlier
// operations wrote.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { format, type PrivateKey } from '../../dist/src/index.js';
import { BLOCK, applyBytes, expectFastPatchError, extentsOf, handPayload, makeKeyPair, rejectionOf, removeDir, sameBytes, tempDir, textBytes, randomBytes, writePatternFile, type HandOp } from '../helpers/payloads.js';

const { OpType } = format;
const A = makeKeyPair();
let dir: string;
beforeAll(async () => {
  dir = await tempDir('target-dictionary');
});
afterAll(async () => {
  await removeDir(dir);
});

/** A 4-block source; a 12-block target: 4 new blocks, then those 4 again with a few bytes changed, then 4 more new ones. */
const source = randomBytes(4 * BLOCK, 301);
const first = textBytes(4 * BLOCK, 302);
const again = Uint8Array.from(first);
for (let i = 100; i < again.length; i += 1500) again[i] = 0x2a;
const last = textBytes(4 * BLOCK, 303);
const image = new Uint8Array(Buffer.concat([first, again, last]));

/** A delta payload over `img` (default: the image below) with `source` as its source, signed by `keys` (helpers/payloads.ts). */
const payload = (ops: readonly HandOp[], keys: readonly PrivateKey[] = [A.key], img: Uint8Array = image) => handPayload(2, img, ops, keys, source);

/** The image's blocks of `extents`, one after another: a target dictionary. */
const blocksOf = (extents: readonly format.Extent[], img: Uint8Array = image) => extentsOf(img, extents);
// The second operation takes the first's blocks; the third a few blocks of each, out of order of
// importance but ascending, with gaps (what an image updated in place gives).
const secondDictionary = [{ startBlock: 0, blockCount: 4 }];
const thirdDictionary = [{ startBlock: 1, blockCount: 2 }, { startBlock: 5, blockCount: 1 }, { startBlock: 7, blockCount: 1 }];
const good: HandOp[] = [
  { type: OpType.REPLACE, start: 0, output: first, blob: first },
  { type: OpType.SOURCE_ZSTD, start: 4, output: again, blob: zstdCompressSync(again, { dictionary: blocksOf(secondDictionary) }), tdict: secondDictionary },
  { type: OpType.SOURCE_ZSTD, start: 8, output: last, blob: zstdCompressSync(last, { dictionary: blocksOf(thirdDictionary) }), tdict: thirdDictionary },
];

async function apply(bytes: Uint8Array, target?: string) {
  const src = join(dir, 'source.img');
  await fsp.writeFile(src, source);
  return applyBytes(bytes, { trustedKeys: [A.pub], source: src, ...(target ? { target } : {}) });
}

describe('SOURCE_ZSTD with a target dictionary', () => {
  it('applies byte for byte, and the repeat costs a fraction of its first copy', async () => {
    const target = join(dir, 'good.img');
    await apply(payload(good), target);
    expect(sameBytes(await fsp.readFile(target), image)).toBe(true);
    expect(good[1]!.blob!.length).toBeLessThan(zstdCompressSync(again).length / 4);
  });

  it('verify (no target) checks it from the blocks it has verified, kept in a temporary folder it removes', async () => {
    const tmp = await fsp.mkdtemp(join(dir, 'tmp-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const result = await apply(payload(good));
      expect(result.bytesWritten).toBe(0);
      expect(await fsp.readdir(tmp)).toEqual([]);
      // And refuses a dictionary that does not match there too.
      const lying = good.map((op, i) => (i === 2 ? { ...op, tdictBytes: new Uint8Array(4 * BLOCK) } : op));
      expectFastPatchError(await rejectionOf(apply(payload(lying))), 'HASH_MISMATCH', 4);
      expect(await fsp.readdir(tmp)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  it('verify: dictionary blocks that a ZERO operation made read as zeros', async () => {
    // REPLACE 0-3, ZERO 4-7, then an operation whose dictionary spans both.
    const img = new Uint8Array(Buffer.concat([first, new Uint8Array(4 * BLOCK), again]));
    const dictionary = [{ startBlock: 2, blockCount: 6 }];
    const ops: HandOp[] = [
      { type: OpType.REPLACE, start: 0, output: first, blob: first },
      { type: OpType.ZERO, start: 4, output: new Uint8Array(4 * BLOCK) },
      { type: OpType.SOURCE_ZSTD, start: 8, output: again, blob: zstdCompressSync(again, { dictionary: blocksOf(dictionary, img) }), tdict: dictionary },
    ];
    expect((await apply(payload(ops, [A.key], img))).bytesWritten).toBe(0);
    const target = join(dir, 'zeros.img');
    await apply(payload(ops, [A.key], img), target);
    expect(sameBytes(await fsp.readFile(target), img)).toBe(true);
  });

  it('an earlier operation that fails ends the wait of a dictionary naming its blocks: its own error, no hang', async () => {
    const target = join(dir, 'earlier-fails.img');
    const before = await writePatternFile(target, image.length, 13);
    // Operation 0's output hash is of other bytes: it fails after its data is checked, before it is written.
    const broken = good.map((op, i) => (i === 0 ? { ...op, output: last } : op));
    const err = await rejectionOf(apply(payload(broken), target));
    expectFastPatchError(err, 'HASH_MISMATCH', 4);
    expect((err as Error).message).toMatch(/operation 0 \(REPLACE\)/);
    expect(sameBytes(await fsp.readFile(target), before)).toBe(true);
  });

  it('a resumed apply reads the dictionary back from what the interrupted one wrote', async () => {
    const target = join(dir, 'resumed.img');
    // As an interrupted apply leaves it: the first eight blocks written, the rest old bytes.
    const before = await writePatternFile(target, image.length, 11);
    await fsp.writeFile(target, Buffer.concat([image.subarray(0, 8 * BLOCK), before.subarray(8 * BLOCK)]));
    const src = join(dir, 'source.img');
    await fsp.writeFile(src, source);
    const result = await applyBytes(payload(good), { trustedKeys: [A.pub], source: src, target, resume: true });
    expect(result.bytesWritten).toBe(4 * BLOCK);
    expect(sameBytes(await fsp.readFile(target), image)).toBe(true);
  });

  it('a dictionary hash that does not match the image before it: HASH_MISMATCH, the operation not written', async () => {
    const target = join(dir, 'bad-hash.img');
    const before = await writePatternFile(target, image.length, 7);
    const lying = good.map((op, i) => (i === 1 ? { ...op, tdictBytes: new Uint8Array(4 * BLOCK) } : op));
    const err = await rejectionOf(apply(payload(lying), target));
    expectFastPatchError(err, 'HASH_MISMATCH', 4);
    expect((err as Error).message).toMatch(/operation 1 \(SOURCE_ZSTD\): the earlier target blocks it names differ/);
    const after = await fsp.readFile(target);
    expect(sameBytes(after.subarray(0, 4 * BLOCK), first)).toBe(true);
    expect(sameBytes(after.subarray(4 * BLOCK), before.subarray(4 * BLOCK))).toBe(true);
  });

  it.each([
    ['reaching into its own output', (ops: HandOp[]) => ops.map((op, i) => (i === 1 ? { ...op, tdict: [{ startBlock: 2, blockCount: 3 }] } : op)), /target dictionary extent 2\+3 is not before block 4/],
    ['naming a later block', (ops: HandOp[]) => ops.map((op, i) => (i === 1 ? { ...op, tdict: [{ startBlock: 0, blockCount: 1 }, { startBlock: 10, blockCount: 1 }] } : op)), /target dictionary extent 10\+1 is not before block 4/],
    ['with an empty extent', (ops: HandOp[]) => ops.map((op, i) => (i === 1 ? { ...op, tdict: [{ startBlock: 0, blockCount: 0 }] } : op)), /target dictionary extent 0\+0 is not before block 4/],
    ['on an operation that is not SOURCE_ZSTD', (ops: HandOp[]) => ops.map((op, i) => (i === 2 ? { ...op, type: OpType.REPLACE_ZSTD, blob: zstdCompressSync(last), tdict: [{ startBlock: 0, blockCount: 8 }] } : op)), /only SOURCE_ZSTD may have a target dictionary/],
  ])('a target dictionary %s: CORRUPT_PAYLOAD before anything is written', async (_name, change, message) => {
    const target = join(dir, 'refused.img');
    const before = await writePatternFile(target, image.length, 9);
    const err = await rejectionOf(apply(payload(change(good)), target));
    expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
    expect((err as Error).message).toMatch(message);
    expect(sameBytes(await fsp.readFile(target), before)).toBe(true);
  });

  it('more than 4096 blocks in all is refused by the manifest check', () => {
    const op: format.Operation = {
      type: OpType.SOURCE_ZSTD, dataOffset: 0, dataLength: 1, dataHash: new Uint8Array(32), outputHash: new Uint8Array(32), sourceHash: undefined,
      srcExtents: [], dstExtents: [{ startBlock: 5000, blockCount: 1 }], targetDictionary: [{ startBlock: 0, blockCount: 2000 }, { startBlock: 2500, blockCount: 2097 }], targetDictionaryHash: new Uint8Array(32),
    };
    const m: format.Manifest = { blockSize: BLOCK, targetSize: 5001 * BLOCK, targetHash: new Uint8Array(32), sourceSize: BLOCK, sourceHash: new Uint8Array(32), version: '1', sourceVersion: '', operations: [
      { type: OpType.ZERO, dataOffset: 0, dataLength: 0, dataHash: undefined, outputHash: new Uint8Array(32), sourceHash: undefined, srcExtents: [], dstExtents: [{ startBlock: 0, blockCount: 5000 }] },
      op,
    ] };
    const back = format.decodeManifest(format.encodeManifest(m));
    expect(back.operations[1]!.targetDictionary).toEqual([{ startBlock: 0, blockCount: 2000 }, { startBlock: 2500, blockCount: 2097 }]);
    expect(() => format.validateManifest(back, 1, 2)).toThrow(/target dictionary of 4097 blocks, more than 4096/);
  });
});
