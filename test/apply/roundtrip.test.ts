// generate -> apply -> byte-identical target, for every kind of image and both WASM builds.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, inspectPayload, readPayloadChunks, type ApplyProgress, type CoreBuild } from '../../dist/src/index.js';
import {
  BLOCK,
  BUILDS,
  DATA_CHUNK,
  KiB,
  ZSTD_DATA_CHUNK,
  MiB,
  blockListHashRef,
  buildPayload,
  firstDifference,
  makeKeyPair,
  mixedImage,
  patternBytes,
  randomBytes,
  removeDir,
  tempDir,
  textBytes,
  untimed,
  writePatternFile,
  zeroRunsImage,
  type BuiltPayload,
} from '../helpers/payloads.js';

interface ImageCase {
  name: string;
  image: () => Uint8Array;
  /** Operation types the generator must have used ('DATA': the format's compressed type). */
  expectTypes: string[];
  /** Least number of operations, given the format's chunk size. */
  minOps: number | ((chunk: number) => number);
}

/** Both formats a device applies: 1 (deflate, made by fastpatch 0.1 and `--format-version 1`) and 2 (zstd, the default). */
const FORMATS = [
  { formatVersion: 1, data: 'REPLACE_DEFLATE', chunk: DATA_CHUNK, level: undefined },
  // zstd level 3: these tests are about correctness; level 16 would only make them slower.
  { formatVersion: 2, data: 'REPLACE_ZSTD', chunk: ZSTD_DATA_CHUNK, level: 3 },
];

const CASES: ImageCase[] = [
  { name: 'long zero runs', image: () => zeroRunsImage(3 * MiB, 1), expectTypes: ['ZERO', 'DATA'], minOps: 3 },
  { name: 'random (incompressible)', image: () => randomBytes(768 * KiB, 2), expectTypes: ['REPLACE'], minOps: 1 },
  { name: 'mixed', image: () => mixedImage(2 * MiB, 3), expectTypes: ['ZERO'], minOps: 2 },
  { name: 'size not a multiple of 4096 (3 MiB + 1234)', image: () => mixedImage(3 * MiB + 1234, 4), expectTypes: ['ZERO'], minOps: 2 },
  { name: 'smaller than one block (100 bytes)', image: () => textBytes(100, 5), expectTypes: ['DATA'], minOps: 1 },
  { name: '100 zero bytes (a partial zero block)', image: () => new Uint8Array(100), expectTypes: [], minOps: 1 },
  { name: 'all zero, 1 MiB', image: () => new Uint8Array(MiB), expectTypes: ['ZERO'], minOps: 1 },
  { name: 'empty (0 bytes)', image: () => new Uint8Array(0), expectTypes: [], minOps: 0 },
  {
    name: 'larger than one 2 MiB deflate chunk (5 MiB + 3 blocks)',
    image: () => textBytes(5 * MiB + 3 * BLOCK, 6),
    expectTypes: ['DATA'],
    minOps: (chunk) => Math.ceil((5 * MiB + 3 * BLOCK) / chunk),
  },
  {
    name: 'larger than one 16 MiB zstd chunk (16 MiB + 3 blocks)',
    image: () => textBytes(16 * MiB + 3 * BLOCK, 7),
    expectTypes: ['DATA'],
    minOps: (chunk) => Math.ceil((16 * MiB + 3 * BLOCK) / chunk),
  },
];

const signer = makeKeyPair();
let dir: string;

beforeAll(async () => {
  dir = await tempDir('roundtrip');
});
afterAll(async () => {
  await removeDir(dir);
});

describe.each(BUILDS)('%s build', (build: CoreBuild) => {
  describe.each(FORMATS)('format $formatVersion', (format) => {
  describe.each(CASES)('$name', (c) => {
    let built: BuiltPayload;
    let n = 0;
    const name = `${build}-v${format.formatVersion}-${c.name.replace(/\W+/g, '_')}`;
    const fresh = (what: string) => join(dir, `${name}-${what}-${n++}`);
    const expectTypes = c.expectTypes.map((t) => (t === 'DATA' ? format.data : t));
    const minOps = typeof c.minOps === 'number' ? c.minOps : c.minOps(format.chunk);

    beforeAll(async () => {
      built = await buildPayload(dir, name, c.image(), { keys: [signer.key], version: '1.2.3', build, formatVersion: format.formatVersion, ...(format.level ? { level: format.level } : {}) });
    });

    it('generates a payload whose size and image hash match an independent computation', () => {
      const { result, image, payload } = built;
      expect(result.targetSize).toBe(image.length);
      expect(result.targetHash).toBe(blockListHashRef(image));
      expect(result.payload.totalSize).toBe(payload.length);
      expect(result.payload.headerSize + result.payload.manifestSize + result.payload.signaturesSize + result.payload.dataSize).toBe(payload.length);
      expect(result.keyIds).toEqual([signer.keyId]);
      for (const type of expectTypes) expect(result.operations[type]?.count ?? 0, `${type} operations`).toBeGreaterThan(0);
      const stats = Object.values(result.operations);
      expect(stats.reduce((s, o) => s + o.count, 0)).toBeGreaterThanOrEqual(minOps);
      expect(stats.reduce((s, o) => s + o.outputBytes, 0)).toBe(image.length);
      expect(stats.reduce((s, o) => s + o.dataBytes, 0)).toBe(result.payload.dataSize);
      const replace = result.operations['REPLACE'];
      if (replace) expect(replace.dataBytes).toBe(replace.outputBytes);
    });

    it('creates a missing target holding exactly the image', async () => {
      const target = fresh('created');
      const progress: ApplyProgress[] = [];
      const started = performance.now();
      const result = await applyPayload(readPayloadChunks(built.payloadPath), {
        trustedKeys: [signer.pub],
        target,
        build,
        onProgress: (p) => progress.push(p),
      });
      const elapsed = (performance.now() - started) / 1000;
      const written = await fsp.readFile(target);
      expect(written.length).toBe(built.image.length);
      expect(firstDifference(written, built.image)).toBe(-1);
      const opCount = Object.values(built.result.operations).reduce((s, o) => s + o.count, 0);
      expect(untimed(result)).toEqual({
        version: '1.2.3',
        targetSize: built.image.length,
        sourceSize: 0,
        targetHash: built.result.targetHash,
        keyId: signer.keyId,
        operations: opCount,
        payloadBytes: built.payload.length,
        bytesWritten: built.image.length,
      });
      // The apply's own clock, inside the caller's.
      expect(result.seconds).toBeGreaterThan(0);
      expect(result.seconds).toBeLessThanOrEqual(elapsed);
      expect(progress.length).toBe(opCount);
      if (opCount > 0) {
        expect(progress.at(-1)).toMatchObject({ opsDone: opCount, opsTotal: opCount, imageBytesDone: built.image.length, targetSize: built.image.length });
        expect(progress.map((p) => p.opsDone)).toEqual(progress.map((_, i) => i + 1));
      }
    });

    it('overwrites every byte of an existing same-size target filled with a pattern', async () => {
      const target = fresh('same-size');
      await writePatternFile(target, built.image.length);
      await applyPayload(readPayloadChunks(built.payloadPath), { trustedKeys: [signer.pub], target, build });
      const written = await fsp.readFile(target);
      expect(firstDifference(written, built.image)).toBe(-1);
    });

    it('keeps the bytes beyond the image on a larger target', async () => {
      const target = fresh('larger');
      const extra = 3 * BLOCK + 17;
      const before = await writePatternFile(target, built.image.length + extra, 0x33);
      await applyPayload(readPayloadChunks(built.payloadPath), { trustedKeys: [signer.pub], target, build });
      const written = await fsp.readFile(target);
      expect(written.length).toBe(before.length);
      expect(firstDifference(written.subarray(0, built.image.length), built.image)).toBe(-1);
      expect(firstDifference(written.subarray(built.image.length), before.subarray(built.image.length))).toBe(-1);
    });

    it('verifies without a target (writes nothing)', async () => {
      const result = await applyPayload(readPayloadChunks(built.payloadPath), { trustedKeys: [signer.pub], build });
      expect(result).toMatchObject({
        targetSize: built.image.length,
        targetHash: built.result.targetHash,
        keyId: signer.keyId,
        payloadBytes: built.payload.length,
        bytesWritten: 0,
      });
    });

    it('inspect reports the sizes and operation counts of the generate result', async () => {
      const info = await inspectPayload(readPayloadChunks(built.payloadPath), [signer.pub]);
      const r = built.result;
      expect(info).toMatchObject({
        // The lowest version that carries the types used: an image of zeros only is version 1 either way.
        formatVersion: Object.keys(r.operations).some((t) => t.endsWith('_ZSTD')) ? 2 : 1,
        version: '1.2.3',
        blockSize: BLOCK,
        targetSize: r.targetSize,
        targetHash: r.targetHash,
        source: null,
        signatures: [{ keyId: signer.keyId }],
        verifiedBy: signer.keyId,
        sizes: {
          header: r.payload.headerSize,
          manifest: r.payload.manifestSize,
          signatures: r.payload.signaturesSize,
          data: r.payload.dataSize,
          total: r.payload.totalSize,
        },
      });
      expect(info.operations.byType).toEqual(r.operations);
      expect(info.operations.total).toBe(Object.values(r.operations).reduce((s, o) => s + o.count, 0));
      const unverified = await inspectPayload(readPayloadChunks(built.payloadPath));
      expect(unverified.verifiedBy).toBeNull();
    });
  });
  });
});

describe('across builds', () => {
  it.each([
    ['release', 'debug'],
    ['debug', 'release'],
  ] as const)('a payload generated with the %s build applies with the %s build', async (genBuild, applyBuild) => {
    const image = mixedImage(MiB + 555, 11);
    const built = await buildPayload(dir, `cross-${genBuild}`, image, { keys: [signer.key], build: genBuild });
    const target = join(dir, `cross-${genBuild}-${applyBuild}.out`);
    const result = await applyPayload(readPayloadChunks(built.payloadPath), { trustedKeys: [signer.pub], target, build: applyBuild });
    expect(result.targetHash).toBe(blockListHashRef(image));
    expect(firstDifference(await fsp.readFile(target), image)).toBe(-1);
  });

  it('both builds generate byte-identical payloads from the same image and key', async () => {
    const image = mixedImage(MiB + 4321, 12);
    const a = await buildPayload(dir, 'same-release', image, { keys: [signer.key], build: 'release' });
    const b = await buildPayload(dir, 'same-debug', image, { keys: [signer.key], build: 'debug' });
    expect(firstDifference(a.payload, b.payload)).toBe(-1);
  });

  it('the pattern helper never yields an all-zero block (targets stay distinguishable from zeros)', () => {
    const p = patternBytes(64 * BLOCK);
    for (let b = 0; b < 64; b++) expect(p.subarray(b * BLOCK, (b + 1) * BLOCK).some((x) => x !== 0)).toBe(true);
  });
});
