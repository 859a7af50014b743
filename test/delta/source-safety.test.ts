// A delta is only as good as its source: a source that is not the image the delta was made from
// is refused (SOURCE_MISMATCH, exit 8) before the operation that reads it writes anything, or
// with checkSource before anything is written at all; a missing source or a source that is the
// target itself is a usage error.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, readPayloadChunks, type ApplyOptions } from '../../dist/src/index.js';
import { blocksOf, buildDelta, opName, proseBytes, targetRange, xorByte, type BuiltDelta } from '../helpers/delta.js';
import {
  BLOCK,
  BUILDS,
  buildPayload,
  expectFastPatchError,
  firstDifference,
  makeKeyPair,
  patternBytes,
  randomBytes,
  rejectionOf,
  removeDir,
  tempDir,
} from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
let d: BuiltDelta;
let source: Uint8Array;
let target: Uint8Array;
let counter = 0;

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

beforeAll(async () => {
  dir = await tempDir('delta-source');
  // Source blocks: A 0-63, B 64-127, C 128-255, D 256-383, U 384-447 (unused by the target), tail.
  const [a, b, c, dd, u] = [randomBytes(64 * BLOCK, 1), randomBytes(64 * BLOCK, 2), proseBytes(128 * BLOCK, 3), randomBytes(128 * BLOCK, 4), randomBytes(64 * BLOCK, 5)];
  source = concat(a!, b!, c!, dd!, u!, randomBytes(1000, 6));
  const bEdited = b!.slice();
  for (let i = 0; i < 10; i++) xorByte(bEdited, 1000 + i * 20011, 0x5a);
  const cInserted = concat(c!.subarray(0, 300_000), proseBytes(50, 7), c!.subarray(300_000));
  // Target: A (copy), B edited (diff), zeros (ZERO), D (copy from further on), C with an insertion, a short tail.
  target = concat(a!, bEdited, new Uint8Array(32 * BLOCK), dd!, cInserted, randomBytes(500, 8));
  d = await buildDelta(dir, 'fixture', source, target, { keys: [signer.key] });
});
afterAll(async () => {
  await removeDir(dir);
});

/** A new file holding the pattern, 5000 bytes larger than the image. */
async function patternTarget(): Promise<{ path: string; before: Uint8Array }> {
  const path = join(dir, `target-${counter++}.img`);
  const before = patternBytes(target.length + 5000, counter);
  await fsp.writeFile(path, before);
  return { path, before };
}

/** A copy of the source with one byte changed in source block `block` (or its size changed by `resize`). */
async function badSource(change: { block?: number; resize?: number }): Promise<string> {
  const path = join(dir, `source-${counter++}.img`);
  let bytes = source.slice();
  if (change.block !== undefined) xorByte(bytes, change.block * BLOCK + 123, 0x01);
  if (change.resize !== undefined) bytes = change.resize >= 0 ? concat(bytes, new Uint8Array(change.resize)) : bytes.slice(0, bytes.length + change.resize);
  await fsp.writeFile(path, bytes);
  return path;
}

const apply = (options: Omit<ApplyOptions, 'trustedKeys'>) => applyPayload(readPayloadChunks(d.payloadPath), { trustedKeys: [signer.pub], ...options });

/** Index of the first operation of `type` that some earlier operation precedes, and a source block only it reads. */
function victim(type: string): { index: number; block: number } {
  const ops = d.manifest.operations;
  const readers = new Map<number, number[]>();
  ops.forEach((op, i) => blocksOf(op.srcExtents).forEach((b) => readers.set(b, [...(readers.get(b) ?? []), i])));
  const index = ops.findIndex((op, i) => i > 0 && opName(op) === type);
  const block = blocksOf(ops[index]!.srcExtents).find((b) => readers.get(b)!.length === 1)!;
  expect(block, `a source block read by operation ${index} only`).toBeDefined();
  return { index, block };
}

it('the fixture has the intended operations', () => {
  expect(d.manifest.operations.map(opName).slice(0, 4)).toEqual(['SOURCE_COPY', 'SOURCE_DIFF', 'ZERO', 'SOURCE_COPY']);
  // D is copied from further on in the source (and the copy runs on into C's unchanged head).
  expect(d.manifest.operations[3]!.srcExtents[0]).toEqual({ startBlock: 256, blockCount: 128 });
  expect(d.manifest.operations.some((op) => blocksOf(op.srcExtents).includes(400))).toBe(false);
});

describe('(a) a source with one changed byte in a block that an operation reads', () => {
  it.each([
    ...BUILDS.map((build) => ['SOURCE_COPY', build] as const),
    ['SOURCE_DIFF', 'release'] as const,
  ])('read by a %s (%s build): SOURCE_MISMATCH (exit 8) naming it; nothing at or after it is written', async (type, build) => {
    const { index, block } = victim(type);
    const op = d.manifest.operations[index]!;
    const { path, before } = await patternTarget();
    const err = await rejectionOf(apply({ source: await badSource({ block }), target: path, build }));
    expectFastPatchError(err, 'SOURCE_MISMATCH', 8);
    const e = op.srcExtents[0]!;
    expect(err.message).toContain(`operation ${index} (${type})`);
    expect(err.message).toContain(`source blocks ${e.startBlock}+${e.blockCount}`);
    const after = await fsp.readFile(path);
    const [start] = targetRange(d.manifest, op);
    // Nothing from the failing operation's first block on was written...
    expect(firstDifference(after.subarray(start), before.subarray(start))).toBe(-1);
    // ...and each earlier operation wrote all of its bytes or none of them.
    for (const earlier of d.manifest.operations.slice(0, index)) {
      const [s, t] = targetRange(d.manifest, earlier);
      const written = firstDifference(after.subarray(s, t), target.subarray(s, t)) === -1;
      const kept = firstDifference(after.subarray(s, t), before.subarray(s, t)) === -1;
      expect(written || kept, `operation ${d.manifest.operations.indexOf(earlier)} half written`).toBe(true);
    }
  });

  it('verifying (no target) with such a source: SOURCE_MISMATCH too', async () => {
    const { block } = victim('SOURCE_DIFF');
    expectFastPatchError(await rejectionOf(apply({ source: await badSource({ block }) })), 'SOURCE_MISMATCH', 8);
  });

  it('a changed byte in a source block that no operation reads: the image is still exact (only what is read matters)', async () => {
    const read = new Set(d.manifest.operations.flatMap((op) => blocksOf(op.srcExtents)));
    expect(read.has(400)).toBe(false); // inside U, which the target does not use
    const { path } = await patternTarget();
    await apply({ source: await badSource({ block: 400 }), target: path });
    expect(firstDifference((await fsp.readFile(path)).subarray(0, target.length), target)).toBe(-1);
  });
});

describe('(b) a source of the wrong size: SOURCE_MISMATCH before any write', () => {
  it.each([
    ['one byte longer', 1],
    ['one byte shorter', -1],
    ['one block shorter', -BLOCK],
    ['one block longer', BLOCK],
  ])('%s: target unchanged; a missing target is not created', async (_name, resize) => {
    const bad = await badSource({ resize });
    const { path, before } = await patternTarget();
    const err = await rejectionOf(apply({ source: bad, target: path }));
    expectFastPatchError(err, 'SOURCE_MISMATCH', 8);
    expect(err.message).toContain(`${source.length}`);
    expect(firstDifference(await fsp.readFile(path), before)).toBe(-1);
    const missing = join(dir, `never-${counter++}.img`);
    expectFastPatchError(await rejectionOf(apply({ source: bad, target: missing })), 'SOURCE_MISMATCH', 8);
    await expect(fsp.stat(missing)).rejects.toThrow(/ENOENT/);
  });

  it('an empty source file: SOURCE_MISMATCH, target unchanged', async () => {
    const empty = join(dir, 'empty.img');
    await fsp.writeFile(empty, new Uint8Array(0));
    const { path, before } = await patternTarget();
    expectFastPatchError(await rejectionOf(apply({ source: empty, target: path })), 'SOURCE_MISMATCH', 8);
    expect(firstDifference(await fsp.readFile(path), before)).toBe(-1);
  });
});

describe('(c) checkSource: the whole source is checked before anything is written', () => {
  it.each([
    ['read by the first operation', () => 5],
    ['read by a later SOURCE_COPY', () => victim('SOURCE_COPY').block],
    ['read by no operation', () => 400],
  ])('a changed byte in a block %s: SOURCE_MISMATCH, target unchanged, a missing target not created', async (_name, block) => {
    const bad = await badSource({ block: block() });
    const { path, before } = await patternTarget();
    const err = await rejectionOf(apply({ source: bad, target: path, checkSource: true }));
    expectFastPatchError(err, 'SOURCE_MISMATCH', 8);
    expect(err.message).toContain(d.result.sourceHash);
    expect(firstDifference(await fsp.readFile(path), before)).toBe(-1);
    const missing = join(dir, `never-${counter++}.img`);
    expectFastPatchError(await rejectionOf(apply({ source: bad, target: missing, checkSource: true })), 'SOURCE_MISMATCH', 8);
    await expect(fsp.stat(missing)).rejects.toThrow(/ENOENT/);
  });

  it('with the right source it applies', async () => {
    const { path } = await patternTarget();
    const result = await apply({ source: d.sourcePath, target: path, checkSource: true });
    expect(result.sourceSize).toBe(source.length);
    expect(firstDifference((await fsp.readFile(path)).subarray(0, target.length), target)).toBe(-1);
  });
});

describe('(d) no source, or a source that cannot be read', () => {
  it('a delta applied without a source: USAGE (exit 2), target unchanged, a missing target not created', async () => {
    const { path, before } = await patternTarget();
    const err = await rejectionOf(apply({ target: path }));
    expectFastPatchError(err, 'USAGE', 2);
    expect(err.message).toContain(`${source.length}-byte source`);
    expect(firstDifference(await fsp.readFile(path), before)).toBe(-1);
    const missing = join(dir, `never-${counter++}.img`);
    expectFastPatchError(await rejectionOf(apply({ target: missing })), 'USAGE', 2);
    await expect(fsp.stat(missing)).rejects.toThrow(/ENOENT/);
  });

  it('verified without a source: USAGE', async () => {
    expectFastPatchError(await rejectionOf(apply({})), 'USAGE', 2);
  });

  it('a source path that does not exist: IO (exit 6), target unchanged', async () => {
    const { path, before } = await patternTarget();
    expectFastPatchError(await rejectionOf(apply({ source: join(dir, 'no-such.img'), target: path })), 'IO', 6);
    expect(firstDifference(await fsp.readFile(path), before)).toBe(-1);
  });

  it('a full payload ignores a source', async () => {
    const full = await buildPayload(dir, 'full', target, { keys: [signer.key] });
    const out = join(dir, `full-${counter++}.out`);
    await applyPayload(readPayloadChunks(full.payloadPath), { trustedKeys: [signer.pub], source: join(dir, 'no-such.img'), target: out });
    expect(firstDifference(await fsp.readFile(out), target)).toBe(-1);
  });
});

describe('(e) the source is the target', () => {
  /** A copy of the source that is also given as the target, under `alias` (a link to it) or itself. */
  async function sameFile(alias: 'path' | 'hard link' | 'symlink', bytes = source): Promise<{ src: string; dst: string }> {
    const src = join(dir, `slot-${counter++}.img`);
    await fsp.writeFile(src, bytes);
    const dst = alias === 'path' ? src : join(dir, `alias-${counter++}.img`);
    if (alias === 'hard link') await fsp.link(src, dst);
    if (alias === 'symlink') await fsp.symlink(src, dst);
    return { src, dst };
  }

  it.each(['path', 'hard link', 'symlink'] as const)('given by the same %s: USAGE (exit 2), the file unchanged', async (alias) => {
    const { src, dst } = await sameFile(alias);
    const err = await rejectionOf(apply({ source: src, target: dst }));
    expectFastPatchError(err, 'USAGE', 2);
    expect(firstDifference(await fsp.readFile(src), source)).toBe(-1);
  });

  it('when the new image is larger than the source file: still USAGE (not TARGET_TOO_SMALL), the file unchanged', async () => {
    const grown = await buildDelta(dir, 'grown', source, concat(target, randomBytes(64 * BLOCK, 9)), { keys: [signer.key] });
    expect(grown.result.targetSize).toBeGreaterThan(source.length);
    const { src } = await sameFile('path');
    const err = await rejectionOf(applyPayload(readPayloadChunks(grown.payloadPath), { trustedKeys: [signer.pub], source: src, target: src }));
    expect(firstDifference(await fsp.readFile(src), source)).toBe(-1);
    expectFastPatchError(err, 'USAGE', 2);
  });
});
