// Everything applyPayload must refuse, with the error code and exit code of its class, and the
// target left as it was whenever the refusal comes before the first write.
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FastPatchError, applyPayload, format, formatPublicKey, inspectPayload, readPayloadChunks, type ApplyOptions } from '../../dist/src/index.js';
import { runCli } from '../helpers/cli.js';
import { buildDelta } from '../helpers/delta.js';
import {
  BLOCK,
  HEADER_SIZE,
  KiB,
  MiB,
  applyBytes,
  assemblePayload,
  blockListHashRef,
  buildPayload,
  chunksOf,
  dataStartOf,
  expectFastPatchError,
  firstDifference,
  flipped,
  makeKeyPair,
  outcome,
  randomBytes,
  rawHeader,
  readHead,
  rejectionOf,
  removeDir,
  rootOrWarn,
  sameBytes,
  tempDir,
  textBytes,
  withLoopDevice,
  writePatternFile,
  type BuiltPayload,
  type Chunking,
} from '../helpers/payloads.js';

const A = makeKeyPair();
const B = makeKeyPair();
const stranger = makeKeyPair();
let dir: string;
/** ~25 KiB image: REPLACE, ZERO and REPLACE_DEFLATE operations; its head is what the byte flips walk. */
let small: BuiltPayload;
/** A few MiB with several data blobs of each kind, for data damage and truncation. */
let medium: BuiltPayload;
/** `small`'s image signed by A and B. */
let dual: BuiltPayload;

function smallImage(): Uint8Array {
  const image = new Uint8Array(8 * KiB + 20 * BLOCK + 8 * KiB + 100);
  image.set(randomBytes(8 * KiB, 31), 0);
  image.set(textBytes(8 * KiB + 100, 32), 8 * KiB + 20 * BLOCK);
  return image;
}

function mediumImage(): Uint8Array {
  const image = new Uint8Array(5 * MiB + 1234);
  image.set(textBytes(2 * MiB + 5 * BLOCK, 33), 0);
  image.set(randomBytes(MiB, 34), 2 * MiB + 30 * BLOCK);
  image.set(textBytes(MiB, 35), 3 * MiB + 64 * BLOCK);
  image.set(randomBytes(5000, 36), 5 * MiB - 3766);
  return image;
}

beforeAll(async () => {
  dir = await tempDir('refusals');
  // Format 1 (deflate): the damage below is aimed at deflate blobs, which devices still apply;
  // zstd data's refusals are in test/format/format-v2.test.ts.
  small = await buildPayload(dir, 'small', smallImage(), { keys: [A.key], formatVersion: 1 });
  medium = await buildPayload(dir, 'medium', mediumImage(), { keys: [A.key], formatVersion: 1 });
  dual = await buildPayload(dir, 'dual', smallImage(), { keys: [A.key, B.key], formatVersion: 1 });
});
afterAll(async () => {
  await removeDir(dir);
});

let counter = 0;
/** A new target file filled with a known pattern, `extra` bytes larger than the image. */
async function patternTarget(size: number, extra = 1000): Promise<{ path: string; before: Uint8Array }> {
  const path = join(dir, `target-${counter++}.img`);
  return { path, before: await writePatternFile(path, size + extra, counter & 0xff) };
}

async function unchanged(path: string, before: Uint8Array): Promise<boolean> {
  return sameBytes(await fsp.readFile(path), before);
}

/** Applies `payload` onto a fresh pattern target; returns the error and whether the target is unchanged. */
async function refuse(payload: Uint8Array, options: Omit<ApplyOptions, 'target'>, chunking: Chunking = 'whole', imageSize = small.image.length) {
  const { path, before } = await patternTarget(imageSize);
  const err = await rejectionOf(applyBytes(payload, { ...options, target: path }, chunking));
  const untouched = await unchanged(path, before);
  await fsp.rm(path, { force: true });
  return { err, untouched };
}

it('the payloads under test have the intended shape', () => {
  expect(Object.keys(small.result.operations).sort()).toEqual(['REPLACE', 'REPLACE_DEFLATE', 'ZERO']);
  expect(medium.result.operations['REPLACE']?.count).toBeGreaterThanOrEqual(1);
  expect(medium.result.operations['REPLACE_DEFLATE']?.count).toBeGreaterThanOrEqual(2);
  expect(dual.result.keyIds).toEqual([A.keyId, B.keyId]);
});

describe('(a) keys', () => {
  it.each([
    ['a stranger public key', () => [stranger.pub]],
    ['a stranger private key', () => [stranger.key]],
    ['several stranger keys', () => [stranger.pub, makeKeyPair().pub]],
  ])('trusting only %s: UNTRUSTED_KEY (exit 3), target untouched', async (_name, keys) => {
    const { err, untouched } = await refuse(small.payload, { trustedKeys: keys() });
    expectFastPatchError(err, 'UNTRUSTED_KEY', 3);
    expect(untouched).toBe(true);
  });

  it('a wrong key does not create a missing target', async () => {
    const path = join(dir, 'never-created.img');
    const err = await rejectionOf(applyBytes(small.payload, { trustedKeys: [stranger.pub], target: path }));
    expectFastPatchError(err, 'UNTRUSTED_KEY', 3);
    await expect(fsp.stat(path)).rejects.toThrow(/ENOENT/);
  });

  it('trustedKeys = [] is a TypeError (bad argument, not bad data)', async () => {
    await expect(applyBytes(small.payload, { trustedKeys: [] })).rejects.toThrow(TypeError);
  });

  // Key rotation: devices that trust only the old key or only the new key both accept the payload.
  it.each([
    ['A only', () => [A.pub], () => A.keyId],
    ['B only', () => [B.pub], () => B.keyId],
    ['A and B', () => [A.pub, B.pub], () => A.keyId],
    ['a stranger and B', () => [stranger.pub, B.pub], () => B.keyId],
    ["B's private key", () => [B.key], () => B.keyId],
  ])('a payload signed by A and B applies when trusting %s', async (_name, keys, expectedId) => {
    const target = join(dir, `rotation-${counter++}.img`);
    const result = await applyBytes(dual.payload, { trustedKeys: keys(), target });
    expect(result.keyId).toBe(expectedId());
    expect(firstDifference(await fsp.readFile(target), dual.image)).toBe(-1);
  });

  it('a payload signed by A and B is refused by a device trusting neither', async () => {
    const { err, untouched } = await refuse(dual.payload, { trustedKeys: [stranger.pub] });
    expectFastPatchError(err, 'UNTRUSTED_KEY', 3);
    expect(untouched).toBe(true);
  });

  it("a bad signature by one trusted key is refused even when another trusted key's verifies", async () => {
    // Damage B's signature (the second entry); A's entry still verifies.
    const sigStart = HEADER_SIZE + dual.result.payload.manifestSize;
    const damaged = flipped(dual.payload, sigStart + 4 + 72 + 8 + 10);
    const onlyA = await applyBytes(damaged, { trustedKeys: [A.pub] });
    expect(onlyA.keyId).toBe(A.keyId); // B is not trusted, so its entry is not consulted
    const { err, untouched } = await refuse(damaged, { trustedKeys: [A.pub, B.pub] });
    expectFastPatchError(err, 'BAD_SIGNATURE', 3);
    expect(untouched).toBe(true);
  });
});

describe('(b) every single-byte change in the head', () => {
  interface Region {
    name: string;
    start: () => number;
    end: () => number;
    /** Allowed outcomes as CODE/exit. */
    allowed: RegExp;
  }
  const headerEnd = () => HEADER_SIZE;
  const manifestEnd = () => HEADER_SIZE + small.result.payload.manifestSize;
  const sigEnd = () => dataStartOf(small.payload);
  const REGIONS: Region[] = [
    { name: 'header', start: () => 0, end: headerEnd, allowed: /^(BAD_SIGNATURE\/3|UNTRUSTED_KEY\/3|CORRUPT_PAYLOAD\/4|TRUNCATED_PAYLOAD\/5)$/ },
    { name: 'manifest', start: headerEnd, end: manifestEnd, allowed: /^BAD_SIGNATURE\/3$/ },
    { name: 'signature block', start: manifestEnd, end: sigEnd, allowed: /^(BAD_SIGNATURE\/3|UNTRUSTED_KEY\/3|CORRUPT_PAYLOAD\/4)$/ },
  ];
  const CASES = REGIONS.flatMap((r) => [
    { ...r, mask: 0x01, step: 1, label: `${r.name}, every byte xor 0x01` },
    // xor 0xff on a sample: every byte of the header and signature block, every 3rd manifest byte.
    { ...r, mask: 0xff, step: r.name === 'manifest' ? 3 : 1, label: `${r.name}, ${r.name === 'manifest' ? 'every 3rd byte' : 'every byte'} xor 0xff` },
  ]);

  it.each(CASES)('$label: refused in its class, target untouched', async ({ start, end, mask, step, allowed }) => {
    const failures: string[] = [];
    let tried = 0;
    for (let at = start(); at < end(); at += step) {
      // One decode worker: the refusals come from the head, and each apply starts its workers (time, not coverage).
      const { err, untouched } = await refuse(flipped(small.payload, at, mask), { trustedKeys: [A.pub], decodeWorkers: 1 });
      tried++;
      const got = outcome(err);
      if (!allowed.test(got)) failures.push(`byte ${at}: ${got}`);
      if (!untouched) failures.push(`byte ${at}: target modified (${got})`);
    }
    expect(tried).toBeGreaterThan(0);
    expect(failures).toEqual([]);
  });

  it('a changed manifest byte is a bad signature also when fed in 7-byte chunks', async () => {
    const at = HEADER_SIZE + 20; // inside the signed image hash
    const { err, untouched } = await refuse(flipped(small.payload, at), { trustedKeys: [A.pub] }, 7);
    expectFastPatchError(err, 'BAD_SIGNATURE', 3);
    expect(untouched).toBe(true);
  });

  it('inspect with a trusted key refuses a changed manifest byte too', async () => {
    const err = await rejectionOf(inspectPayload(chunksOf(flipped(small.payload, HEADER_SIZE + 40)), [A.pub]));
    expectFastPatchError(err, 'BAD_SIGNATURE', 3);
  });
});

describe('(c) a changed byte in the data section', () => {
  interface Blob {
    index: number;
    type: number;
    /** Absolute offset of the blob in the payload. */
    start: number;
    length: number;
  }
  let blobs: Blob[];
  beforeAll(() => {
    const p = medium.payload;
    const manifest = format.decodeManifest(p.subarray(HEADER_SIZE, HEADER_SIZE + medium.result.payload.manifestSize));
    const dataStart = dataStartOf(p);
    blobs = manifest.operations
      .map((op, index) => ({ index, type: op.type, start: dataStart + op.dataOffset, length: op.dataLength }))
      .filter((b) => b.length > 0);
  });
  const deflate = () => blobs.filter((b) => b.type === format.OpType.REPLACE_DEFLATE);
  const replace = () => blobs.filter((b) => b.type === format.OpType.REPLACE);

  it.each([
    ['the first byte of data', () => blobs[0]!.start],
    ['the middle of the first deflate blob', () => deflate()[0]!.start + (deflate()[0]!.length >> 1)],
    ['the last byte of a deflate blob', () => deflate()[0]!.start + deflate()[0]!.length - 1],
    ['the middle of the second deflate blob', () => deflate()[1]!.start + (deflate()[1]!.length >> 1)],
    ['the middle of a REPLACE blob', () => replace()[0]!.start + (replace()[0]!.length >> 1)],
    ['the last byte of the payload', () => medium.payload.length - 1],
  ])('%s: HASH_MISMATCH (exit 4); earlier operations are written, that one and later ones are not', async (_name, position) => {
    const at = position();
    const damaged = flipped(medium.payload, at);
    const verifyErr = await rejectionOf(applyBytes(damaged, { trustedKeys: [A.pub] }));
    expectFastPatchError(verifyErr, 'HASH_MISMATCH', 4);

    const { path, before } = await patternTarget(medium.image.length);
    const err = await rejectionOf(applyBytes(damaged, { trustedKeys: [A.pub], target: path }, 65536));
    expectFastPatchError(err, 'HASH_MISMATCH', 4);
    // The damaged blob's operation writes from its first block on (operations are in block order).
    const manifest = format.decodeManifest(medium.payload.subarray(HEADER_SIZE, HEADER_SIZE + medium.result.payload.manifestSize));
    const hit = blobs.find((b) => at >= b.start && at < b.start + b.length)!;
    const firstByte = manifest.operations[hit.index]!.dstExtents[0]!.startBlock * BLOCK;
    const after = await fsp.readFile(path);
    expect(firstDifference(after.subarray(0, firstByte), medium.image.subarray(0, firstByte))).toBe(-1);
    expect(firstDifference(after.subarray(firstByte), before.subarray(firstByte))).toBe(-1);
  });
});

describe('(d) truncation', () => {
  it.each([
    ['small', () => small],
    ['medium', () => medium],
  ])('of the %s payload at every byte of its head: TRUNCATED_PAYLOAD (exit 5), target untouched', async (_name, get) => {
    const built = get();
    const head = dataStartOf(built.payload);
    // One pattern target for every cut: its mtime is checked after each cut, its bytes at the end.
    const { path, before } = await patternTarget(built.image.length);
    const mtime = (await fsp.stat(path)).mtimeMs;
    const failures: string[] = [];
    for (let cut = 0; cut < head; cut++) {
      // One decode worker: a cut head never reaches a decode, and each apply starts its workers (time, not coverage).
      const err = await rejectionOf(applyBytes(built.payload.subarray(0, cut), { trustedKeys: [A.pub], target: path, decodeWorkers: 1 }, cut % 2 === 0 ? 'whole' : 13));
      if (outcome(err) !== 'TRUNCATED_PAYLOAD/5') failures.push(`cut ${cut}: ${outcome(err)}`);
      if ((await fsp.stat(path)).mtimeMs !== mtime) failures.push(`cut ${cut}: target modified`);
    }
    expect(failures).toEqual([]);
    expect(await unchanged(path, before)).toBe(true);
  });

  // README: a data failure stops at the failing operation; operations before it are already
  // written, the failing one is not. The failing one is the first whose data is incomplete.
  it('at ~50 points over the data section, at its start and 1 byte short of the end: TRUNCATED_PAYLOAD (exit 5); operations before the cut are written, later ones not', async () => {
    const p = medium.payload;
    const head = dataStartOf(p);
    const manifest = format.decodeManifest(p.subarray(HEADER_SIZE, HEADER_SIZE + medium.result.payload.manifestSize));
    const cuts = [head, head + 1, p.length - 1];
    for (let i = 1; i <= 50; i++) cuts.push(head + Math.floor(((p.length - 1 - head) * i) / 51));
    const failures: string[] = [];
    for (const [i, cut] of cuts.entries()) {
      const truncated = p.subarray(0, cut);
      // Alternate verify-only and apply runs to keep the suite fast; both must refuse alike.
      if (i % 2 === 1) {
        const err = await rejectionOf(applyBytes(truncated, { trustedKeys: [A.pub] }, 100_000));
        if (outcome(err) !== 'TRUNCATED_PAYLOAD/5') failures.push(`cut ${cut} (verify): ${outcome(err)}`);
        continue;
      }
      const { path, before } = await patternTarget(medium.image.length);
      const err = await rejectionOf(applyBytes(truncated, { trustedKeys: [A.pub], target: path }, 100_000));
      if (outcome(err) !== 'TRUNCATED_PAYLOAD/5') failures.push(`cut ${cut} (apply): ${outcome(err)}`);
      const failing = manifest.operations.findIndex((op) => op.dataLength > 0 && head + op.dataOffset + op.dataLength > cut);
      const split = manifest.operations[failing]!.dstExtents[0]!.startBlock * BLOCK;
      const after = await fsp.readFile(path);
      const written = firstDifference(after.subarray(0, split), medium.image.subarray(0, split));
      if (written !== -1) failures.push(`cut ${cut}: byte ${written} (before operation ${failing}) not written`);
      const kept = firstDifference(after.subarray(split), before.subarray(split));
      if (kept !== -1) failures.push(`cut ${cut}: byte ${split + kept} (operation ${failing} or later) written`);
      await fsp.rm(path);
    }
    expect(failures).toEqual([]);
  });

  it('inspect of a payload cut inside its head: TRUNCATED_PAYLOAD (exit 5)', async () => {
    const head = dataStartOf(small.payload);
    for (const cut of [0, 1, 31, 32, 33, head - 77, head - 1]) {
      expectFastPatchError(await rejectionOf(inspectPayload(chunksOf(small.payload.subarray(0, cut)))), 'TRUNCATED_PAYLOAD', 5);
    }
    // The head alone is enough for inspect.
    const info = await inspectPayload(chunksOf(small.payload.subarray(0, head)));
    expect(info.targetHash).toBe(small.result.targetHash);
  });
});

describe('(e) trailing bytes after a valid payload', () => {
  it.each([
    ['one zero byte', () => Buffer.alloc(1), 'whole'],
    ['one 0xff byte, as a separate chunk', () => Buffer.from([0xff]), 4096],
    ['4 KiB of garbage', () => Buffer.from(randomBytes(4096, 37)), 'whole'],
    ['a second copy of the payload', () => small.payload, 'whole'],
    ['a second copy, in 1000-byte chunks', () => small.payload, 1000],
  ] as const)('%s: CORRUPT_PAYLOAD (exit 4)', async (_name, extra, chunking) => {
    const payload = Buffer.concat([small.payload, extra()]);
    const err = await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub] }, chunking as Chunking));
    expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
    const target = join(dir, `trailing-${counter++}.img`);
    expectFastPatchError(await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub], target }, chunking as Chunking)), 'CORRUPT_PAYLOAD', 4);
  });

  it('an extra byte in a chunk of its own after the last one', async () => {
    async function* stream(): AsyncGenerator<Uint8Array> {
      yield small.payload;
      yield Uint8Array.of(0);
    }
    expectFastPatchError(await rejectionOf(applyPayload(stream(), { trustedKeys: [A.pub] })), 'CORRUPT_PAYLOAD', 4);
  });
});

describe('(f) target smaller than the image', () => {
  it.each([
    ['1 byte smaller', (n: number) => n - 1],
    ['one block smaller', (n: number) => n - BLOCK],
    ['empty (0 bytes)', () => 0],
  ])('a regular file %s: TARGET_TOO_SMALL (exit 7), untouched', async (_name, size) => {
    const path = join(dir, `small-target-${counter++}.img`);
    const before = await writePatternFile(path, size(small.image.length));
    const err = await rejectionOf(applyBytes(small.payload, { trustedKeys: [A.pub], target: path }));
    expectFastPatchError(err, 'TARGET_TOO_SMALL', 7);
    expect(await unchanged(path, before)).toBe(true);
  });

  it('a directory as the target: IO (exit 6)', async () => {
    const path = join(dir, `dir-target-${counter++}`);
    await fsp.mkdir(path);
    expectFastPatchError(await rejectionOf(applyBytes(small.payload, { trustedKeys: [A.pub], target: path })), 'IO', 6);
  });

  it('a target in a missing folder: IO (exit 6)', async () => {
    const path = join(dir, 'no-such-folder', 'target.img');
    expectFastPatchError(await rejectionOf(applyBytes(small.payload, { trustedKeys: [A.pub], target: path })), 'IO', 6);
  });

  it.runIf(rootOrWarn('the small loop device test'))('a loop device smaller than the image (root): TARGET_TOO_SMALL (exit 7), untouched', async () => {
    const backing = join(dir, 'small-loop.img');
    const before = await writePatternFile(backing, 512 * KiB);
    expect(medium.image.length).toBeGreaterThan(512 * KiB);
    await withLoopDevice(backing, {}, async (device) => {
      const err = await rejectionOf(applyBytes(medium.payload, { trustedKeys: [A.pub], target: device }));
      expectFastPatchError(err, 'TARGET_TOO_SMALL', 7);
      expect(sameBytes(await readHead(device, 512 * KiB), before)).toBe(true);
    });
    expect(await unchanged(backing, before)).toBe(true);
  });
});

describe('(g) hostile headers built by hand', () => {
  const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
  const HEADERS: [string, () => Buffer][] = [
    ['bad magic', () => rawHeader({ magic: Buffer.from('FPAY\n\n\x1a\n') })],
    ['all zero', () => Buffer.alloc(HEADER_SIZE)],
    ['manifest size 0', () => rawHeader({ manifestSize: 0 })],
    ['manifest size 16 MiB + 1', () => rawHeader({ manifestSize: 16 * MiB + 1 })],
    ['manifest size 2^32 - 1', () => rawHeader({ manifestSize: 0xffffffff })],
    ['signature count 0 (block of 4 bytes)', () => rawHeader({ signaturesSize: 4 })],
    ['signature count 17', () => rawHeader({ signaturesSize: 4 + 17 * 72 })],
    ['signature block of 0 bytes', () => rawHeader({ signaturesSize: 0 })],
    ['signature block not 4 + 72k', () => rawHeader({ signaturesSize: 4 + 72 + 1 })],
    ['signature block of 2^32 - 1 bytes', () => rawHeader({ signaturesSize: 0xffffffff })],
    ['data size 2^53', () => rawHeader({ dataSize: MAX_SAFE + 1n })],
    ['data size 2^64 - 1', () => rawHeader({ dataSize: 0xffffffffffffffffn })],
    ['version 0', () => rawHeader({ version: 0 })],
    ['version 3', () => rawHeader({ version: 3 })],
    ['version 2^32 - 1', () => rawHeader({ version: 0xffffffff })],
    ['flags 1', () => rawHeader({ flags: 1 })],
    ['flags 0x80000000', () => rawHeader({ flags: 0x80000000 })],
  ];

  it.each(HEADERS)('%s: CORRUPT_PAYLOAD (exit 4), promptly and without allocating the announced size', async (_name, header) => {
    for (const [tail, chunking] of [
      [Buffer.alloc(0), 'whole'],
      [Buffer.from(randomBytes(1000, 38)), 'whole'],
      [Buffer.from(randomBytes(100, 39)), 1],
    ] as const) {
      const payload = Buffer.concat([header(), tail]);
      const memBefore = process.memoryUsage().arrayBuffers;
      // Promptly: work in proportion to an announced size (up to 2^64) would run into the test's timeout.
      const { err, untouched } = await refuse(payload, { trustedKeys: [A.pub] }, chunking);
      expect(process.memoryUsage().arrayBuffers - memBefore).toBeLessThan(8 * MiB);
      expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
      expect(untouched).toBe(true);
    }
  });

  it('a valid header announcing the largest manifest, then nothing: TRUNCATED_PAYLOAD (exit 5), promptly', async () => {
    // Promptly: waiting for, or sizing by, the announced 16 MiB manifest would run into the test's timeout.
    const { err, untouched } = await refuse(rawHeader({ manifestSize: 16 * MiB, dataSize: MAX_SAFE }), { trustedKeys: [A.pub] });
    expectFastPatchError(err, 'TRUNCATED_PAYLOAD', 5);
    expect(untouched).toBe(true);
  });

  it.each([
    ['count 2 in a block sized for 1', (s: Buffer) => s.writeUInt16LE(2, 0)],
    ['count 0', (s: Buffer) => s.writeUInt16LE(0, 0)],
    ['reserved field not zero', (s: Buffer) => s.writeUInt16LE(1, 2)],
  ])('a signature block with %s: CORRUPT_PAYLOAD (exit 4), target untouched', async (_name, edit) => {
    const payload = Buffer.from(small.payload);
    const sigStart = HEADER_SIZE + small.result.payload.manifestSize;
    edit(payload.subarray(sigStart, dataStartOf(payload)));
    const { err, untouched } = await refuse(payload, { trustedKeys: [A.pub] });
    expectFastPatchError(err, 'CORRUPT_PAYLOAD', 4);
    expect(untouched).toBe(true);
  });
});

describe('(h) validly signed payloads that lie', () => {
  const hash = (data: Uint8Array) => Buffer.from(blockListHashRef(data), 'hex');
  const block = (seed: number) => textBytes(BLOCK, seed);
  type Op = format.Operation;
  const op = (type: number, startBlock: number, blockCount: number, blob: Uint8Array, output: Uint8Array, dataOffset: number): Op => ({
    type,
    dataOffset,
    dataLength: blob.length,
    dataHash: blob.length > 0 ? hash(blob) : undefined,
    outputHash: hash(output),
    sourceHash: undefined,
    srcExtents: [],
    dstExtents: [{ startBlock, blockCount }],
  });
  const manifest = (image: Uint8Array, operations: Op[]): format.Manifest => ({
    blockSize: BLOCK,
    targetSize: image.length,
    targetHash: hash(image),
    sourceSize: 0,
    sourceHash: new Uint8Array(32),
    version: '9.9.9',
    operations,
  });
  const b0 = block(40);
  const b1 = block(41);
  const image = Buffer.concat([b0, b1]);
  const zlib = async () => import('node:zlib');

  it('the hand-built baseline applies (two REPLACE operations)', async () => {
    const payload = assemblePayload(manifest(image, [op(0, 0, 1, b0, b0, 0), op(0, 1, 1, b1, b1, BLOCK)]), [b0, b1], [A.key]);
    const target = join(dir, `lie-${counter++}.img`);
    const result = await applyBytes(payload, { trustedKeys: [A.pub], target });
    expect(result.operations).toBe(2);
    expect(sameBytes(await fsp.readFile(target), image)).toBe(true);
  });

  it('operations out of block order: refused before the target is touched, in apply and verify alike', async () => {
    const payload = assemblePayload(manifest(image, [op(0, 1, 1, b1, b1, 0), op(0, 0, 1, b0, b0, BLOCK)]), [b1, b0], [A.key]);
    const target = join(dir, `lie-${counter++}.img`);
    const before = await writePatternFile(target, image.length);
    expectFastPatchError(await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub], target })), 'CORRUPT_PAYLOAD', 4);
    expect(sameBytes(await fsp.readFile(target), before)).toBe(true);
    expectFastPatchError(await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub] })), 'CORRUPT_PAYLOAD', 4);
  });

  interface Lie {
    name: string;
    build: () => Promise<Buffer>;
    code: string;
    exit: number;
    /** Refused before the target is opened. */
    beforeWrites: boolean;
  }
  const LIES: Lie[] = [
    {
      name: 'a deflate blob that inflates to more than its extents',
      build: async () => {
        const blob = (await zlib()).deflateRawSync(Buffer.concat([b0, b0]));
        return assemblePayload(manifest(image, [op(1, 0, 1, blob, b0, 0), op(0, 1, 1, b1, b1, blob.length)]), [blob, b1], [A.key]);
      },
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: false,
    },
    {
      name: 'a deflate blob that inflates to fewer bytes than its extents',
      build: async () => {
        const blob = (await zlib()).deflateRawSync(b0.subarray(0, 100));
        return assemblePayload(manifest(image, [op(1, 0, 1, blob, b0, 0), op(0, 1, 1, b1, b1, blob.length)]), [blob, b1], [A.key]);
      },
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: false,
    },
    {
      name: 'a deflate blob that is not a deflate stream',
      build: async () => {
        const blob = Buffer.from(randomBytes(300, 42));
        blob[0] = 0xff; // BTYPE 11: reserved, invalid in RFC 1951
        return assemblePayload(manifest(image, [op(1, 0, 1, blob, b0, 0), op(0, 1, 1, b1, b1, blob.length)]), [blob, b1], [A.key]);
      },
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: false,
    },
    {
      name: 'an output hash that does not match the data',
      build: async () => assemblePayload(manifest(image, [{ ...op(0, 0, 1, b0, b0, 0), outputHash: hash(b1) }, op(0, 1, 1, b1, b1, BLOCK)]), [b0, b1], [A.key]),
      code: 'HASH_MISMATCH',
      exit: 4,
      beforeWrites: false,
    },
    {
      name: 'an image hash that does not match the operations',
      build: async () => assemblePayload({ ...manifest(image, [op(0, 0, 1, b0, b0, 0), op(0, 1, 1, b1, b1, BLOCK)]), targetHash: hash(b0) }, [b0, b1], [A.key]),
      code: 'HASH_MISMATCH',
      exit: 4,
      beforeWrites: false,
    },
    {
      name: 'two operations writing the same block',
      build: async () => assemblePayload(manifest(image, [op(0, 0, 1, b0, b0, 0), op(0, 0, 1, b1, b1, BLOCK), op(0, 1, 1, b1, b1, 2 * BLOCK)]), [b0, b1, b1], [A.key]),
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: true,
    },
    {
      name: 'a block no operation writes',
      build: async () => assemblePayload(manifest(image, [op(0, 0, 1, b0, b0, 0)]), [b0], [A.key]),
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: true,
    },
    {
      name: 'an extent beyond the image',
      build: async () => assemblePayload(manifest(image, [op(0, 0, 1, b0, b0, 0), op(0, 1, 1, b1, b1, BLOCK), op(2, 2, 1, new Uint8Array(0), new Uint8Array(BLOCK), 2 * BLOCK)]), [b0, b1], [A.key]),
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: true,
    },
    {
      name: 'a reserved (delta) operation type',
      build: async () => assemblePayload(manifest(image, [op(3, 0, 1, b0, b0, 0), op(0, 1, 1, b1, b1, BLOCK)]), [b0, b1], [A.key]),
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: true,
    },
    {
      name: 'a header data size that disagrees with the operations',
      build: async () => assemblePayload(manifest(image, [op(0, 0, 1, b0, b0, 0), op(0, 1, 1, b1, b1, BLOCK)]), [b0, b1], [A.key], 2 * BLOCK + 1),
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: true,
    },
    {
      name: 'a REPLACE whose data length differs from its output',
      build: async () => {
        const short = b0.subarray(0, 4000);
        return assemblePayload(manifest(image, [op(0, 0, 1, short, b0, 0), op(0, 1, 1, b1, b1, short.length)]), [short, b1], [A.key]);
      },
      code: 'CORRUPT_PAYLOAD',
      exit: 4,
      beforeWrites: true,
    },
  ];

  it.each(LIES)('$name: $code', async ({ build, code, exit, beforeWrites }) => {
    const payload = await build();
    expectFastPatchError(await rejectionOf(applyBytes(payload, { trustedKeys: [A.pub] })), code, exit);
    const { err, untouched } = await refuse(payload, { trustedKeys: [A.pub] }, 'whole', image.length);
    expectFastPatchError(err, code, exit);
    if (beforeWrites) expect(untouched).toBe(true);
  });

  it('a refused operation is not written: a damaged first operation leaves the whole target as it was', async () => {
    const blob = (await zlib()).deflateRawSync(Buffer.concat([b0, b0]));
    const payload = assemblePayload(manifest(image, [op(1, 0, 1, blob, b0, 0), op(0, 1, 1, b1, b1, blob.length)]), [blob, b1], [A.key]);
    const { err, untouched } = await refuse(payload, { trustedKeys: [A.pub] }, 'whole', image.length);
    expect(err).toBeInstanceOf(FastPatchError);
    expect(untouched).toBe(true);
  });
});

// A mistyped device path must not become a regular file (in /dev, a tmpfs: RAM), a symlink
// another user planted in a shared folder must not redirect root's write, and a refused run must
// not leave a new target file behind.
describe('(i) where a target may be, and what a refused run leaves', () => {
  const isRoot = process.getuid?.() === 0;
  /** Paths that must never be created; removed afterwards if a run did create them. */
  async function neverCreated(paths: string[], run: (path: string) => Promise<unknown>, code: string, exit: number): Promise<void> {
    for (const path of paths) {
      try {
        await expect(fsp.lstat(path), `${path} must not exist before the test`).rejects.toThrow(/ENOENT/);
        expectFastPatchError(await rejectionOf(run(path)), code, exit);
        await expect(fsp.lstat(path), `${path} must not be created`).rejects.toThrow(/ENOENT/);
      } finally {
        await fsp.rm(path, { force: true });
      }
    }
  }

  it.runIf(isRoot)('a missing target under /dev (also through a folder symlink, /dev/shm) or /run: USAGE (exit 2), nothing created', async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const devLink = join(dir, `dev-link-${counter++}`);
    await fsp.symlink('/dev', devLink);
    const paths = [`/dev/sdzz${tag}5`, `/dev/nvme9n9p${tag}`, join(devLink, `sdzz${tag}6`), `/run/fastpatch-${tag}.img`];
    if (existsSync('/dev/shm')) paths.push(`/dev/shm/fastpatch-${tag}.img`);
    await neverCreated(paths, (path) => applyBytes(small.payload, { trustedKeys: [A.pub], target: path }), 'USAGE', 2);
  });

  it.runIf(isRoot)('the CLI says a /dev target must be an existing block device', async () => {
    const pub = join(dir, `a-${counter++}.pub`);
    await fsp.writeFile(pub, formatPublicKey(A.pub));
    const path = `/dev/sdzz${Math.random().toString(36).slice(2, 8)}`;
    try {
      const run = await runCli(['apply', small.payloadPath, '--target', path, '--pubkey', pub]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/does not exist: a target under \/dev must be an existing block device/);
      expect(existsSync(path)).toBe(false);
    } finally {
      await fsp.rm(path, { force: true });
    }
  });

  it('an existing non-block file under /dev (/dev/null): USAGE (exit 2)', async () => {
    expectFastPatchError(await rejectionOf(applyBytes(small.payload, { trustedKeys: [A.pub], target: '/dev/null' })), 'USAGE', 2);
  });

  it('a symlink or hard link planted in a shared folder is not followed: USAGE (exit 2), what it points to unchanged or not created', async () => {
    const shared = join(dir, `shared-${counter++}`);
    await fsp.mkdir(shared, { mode: 0o1777 });
    const victim = join(dir, `victim-${counter++}`);
    const before = await writePatternFile(victim, small.image.length + 100);
    const planted = join(shared, 'new.img');
    await fsp.symlink(victim, planted);
    expectFastPatchError(await rejectionOf(applyBytes(small.payload, { trustedKeys: [A.pub], target: planted })), 'USAGE', 2);
    expect(await unchanged(victim, before)).toBe(true);
    // A hard link planted the same way (same filesystem) is refused too.
    const hard = join(shared, 'hard.img');
    await fsp.link(victim, hard);
    const err = await rejectionOf(applyBytes(small.payload, { trustedKeys: [A.pub], target: hard }));
    expectFastPatchError(err, 'USAGE', 2);
    expect(err.message).toMatch(/hard links/);
    expect(await unchanged(victim, before)).toBe(true);
    // Dangling: the file it names is not created.
    const dangling = join(shared, 'dangling.img');
    const pointee = join(dir, `pointee-${counter++}`);
    await fsp.symlink(pointee, dangling);
    expect(outcome(await rejectionOf(applyBytes(small.payload, { trustedKeys: [A.pub], target: dangling })))).toMatch(/^(USAGE\/2|IO\/6)$/);
    expect(existsSync(pointee)).toBe(false);
  });

  it('a delta refused by its first operation (wrong source) leaves no new target file; so does a damaged first data blob', async () => {
    const src = randomBytes(64 * BLOCK, 81);
    const dst = src.slice();
    dst.set(textBytes(8 * BLOCK, 82), 48 * BLOCK);
    const delta = await buildDelta(dir, `refused-${counter++}`, src, dst, { keys: [A.key] });
    const bad = join(dir, `bad-source-${counter++}.img`);
    const wrong = src.slice();
    wrong[100] = wrong[100]! ^ 0xff; // block 0, read by the first operation
    await fsp.writeFile(bad, wrong);
    const missing = join(dir, `new-target-${counter++}.img`);
    expectFastPatchError(await rejectionOf(applyPayload(readPayloadChunks(delta.payloadPath), { trustedKeys: [A.pub], source: bad, target: missing })), 'SOURCE_MISMATCH', 8);
    expect(existsSync(missing), 'a refused delta must not leave a new target file').toBe(false);
    // A full payload whose first data blob is damaged.
    const damaged = flipped(medium.payload, dataStartOf(medium.payload) + 10);
    const missing2 = join(dir, `new-target-${counter++}.img`);
    expect(outcome(await rejectionOf(applyBytes(damaged, { trustedKeys: [A.pub], target: missing2 })))).toMatch(/^(HASH_MISMATCH|CORRUPT_PAYLOAD)\/4$/);
    expect(existsSync(missing2)).toBe(false);
  });

  it('a missing source says it is the source and what to give', async () => {
    const src = randomBytes(16 * BLOCK, 83);
    const dst = src.slice();
    dst.set(textBytes(BLOCK, 84), 4 * BLOCK);
    const delta = await buildDelta(dir, `nosource-${counter++}`, src, dst, { keys: [A.key] });
    const nowhere = join(dir, 'no-such-source.img');
    const target = join(dir, `t-${counter++}.img`);
    const err = await rejectionOf(applyPayload(readPayloadChunks(delta.payloadPath), { trustedKeys: [A.pub], source: nowhere, target }));
    expectFastPatchError(err, 'IO', 6);
    expect(err.message).toBe(`source image ${nowhere} does not exist: give the image the delta was made from (--source)`);
    expect(existsSync(target)).toBe(false);
  });
});
