// Split-point tests: every way of cutting the payload into pushes gives the one-shot result, and
// so do copies of the payload at a non-zero byteOffset inside a larger ArrayBuffer.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, format, type ApplyResult, type CoreBuild } from '../../dist/src/index.js';
import { PayloadReader } from '../../dist/src/apply/reader.js';
import {
  BLOCK,
  BUILDS,
  HEADER_SIZE,
  KiB,
  MiB,
  applyBytes,
  atByteOffset,
  buildPayload,
  chunkSizes,
  chunksOf,
  dataStartOf,
  describeChunking,
  firstDifference,
  hex,
  makeKeyPair,
  randomBytes,
  removeDir,
  splitAt,
  tempDir,
  textBytes,
  untimed,
  type BuiltPayload,
  type Chunking,
} from '../helpers/payloads.js';

const signer = makeKeyPair();
let dir: string;
let small: BuiltPayload;
let large: BuiltPayload;

/** Small enough for 1-byte chunks: one REPLACE, one ZERO and one REPLACE_ZSTD operation (format 2's default), and a short last block. */
function smallImage(): Uint8Array {
  const image = new Uint8Array(12 * KiB + 20 * BLOCK + 24 * KiB + 321);
  image.set(randomBytes(12 * KiB, 21), 0);
  image.set(textBytes(24 * KiB + 321, 22), 12 * KiB + 20 * BLOCK);
  return image;
}

/** Several operations, larger than the 1 MiB read chunk, for the larger chunkings. */
function largeImage(): Uint8Array {
  const image = new Uint8Array(6 * MiB + 777);
  image.set(textBytes(2 * MiB + 3 * BLOCK, 23), 0);
  image.set(randomBytes(1200 * KiB, 24), 2 * MiB + 40 * BLOCK);
  image.set(textBytes(2.5 * MiB + 777, 25), 3.5 * MiB);
  return image;
}

beforeAll(async () => {
  dir = await tempDir('chunking');
  small = await buildPayload(dir, 'small', smallImage(), { keys: [signer.key] });
  large = await buildPayload(dir, 'large', largeImage(), { keys: [signer.key] });
});
afterAll(async () => {
  await removeDir(dir);
});

let counter = 0;
async function applyOnce(payload: Uint8Array, chunks: AsyncIterable<Uint8Array>, build: CoreBuild): Promise<{ result: ApplyResult; target: Buffer }> {
  const target = join(dir, `t-${counter++}.img`);
  try {
    const result = await applyPayload(chunks, { trustedKeys: [signer.pub], target, build });
    return { result, target: await fsp.readFile(target) };
  } finally {
    await fsp.rm(target, { force: true });
  }
}

it('the payloads under test have the intended shape', () => {
  expect(Object.keys(small.result.operations).sort()).toEqual(['REPLACE', 'REPLACE_ZSTD', 'ZERO']);
  expect(small.payload.length).toBeLessThan(32 * KiB);
  expect(Object.values(large.result.operations).reduce((s, o) => s + o.count, 0)).toBeGreaterThanOrEqual(4);
  expect(large.payload.length).toBeGreaterThan(MiB);
});

describe.each(BUILDS)('%s build', (build) => {
  const SMALL_CHUNKINGS: Chunking[] = [
    1,
    7,
    31,
    4095,
    4096,
    4097,
    [1, 2, 3, 5, 8, 13, 21, 34, 55, 89],
    { seed: 1, max: 100 },
    { seed: 2, max: 5000 },
    { seed: 3, max: 20000 },
    'whole',
  ];
  const LARGE_CHUNKINGS: Chunking[] = [4097, 65537, MiB, MiB + 1, { seed: 4, max: 300 * KiB }, { seed: 5, max: 3 * MiB }, 'whole'];

  describe.each([
    { what: 'small payload', get: () => small, chunkings: SMALL_CHUNKINGS },
    { what: 'multi-operation payload', get: () => large, chunkings: LARGE_CHUNKINGS },
  ])('$what', ({ get, chunkings }) => {
    let reference: { result: ApplyResult; target: Buffer };
    beforeAll(async () => {
      reference = await applyOnce(get().payload, chunksOf(get().payload, 'whole'), build);
      expect(firstDifference(reference.target, get().image)).toBe(-1);
    });

    it.each(chunkings.map((c) => [describeChunking(c), c] as const))('%s: identical target and result', async (_name, chunking) => {
      const payload = get().payload;
      const run = await applyOnce(payload, chunksOf(payload, chunking), build);
      expect(firstDifference(run.target, get().image)).toBe(-1);
      expect(untimed(run.result)).toEqual(untimed(reference.result));
    });

    it.each([3, 4096 + 5].flatMap((shift) => chunkings.filter((c) => c !== 1).map((c) => [shift, describeChunking(c), c] as const)))(
      'at byteOffset %i, %s: identical target and result',
      async (shift, _name, chunking) => {
        const copy = atByteOffset(get().payload, shift);
        expect(copy.byteOffset).toBe(shift);
        const run = await applyOnce(copy, chunksOf(copy, chunking), build);
        expect(firstDifference(run.target, get().image)).toBe(-1);
        expect(untimed(run.result)).toEqual(untimed(reference.result));
      },
    );
  });

  it('1-byte chunks of a copy at byteOffset 1 (verify mode)', async () => {
    const copy = atByteOffset(small.payload, 1);
    const result = await applyBytes(copy, { trustedKeys: [signer.pub], build }, 1);
    expect(result.targetHash).toBe(small.result.targetHash);
  });
});

describe('split points (release build, verify mode)', () => {
  /** Cut points that matter to the applier: the header, the head's unit boundaries, and every data blob's edges. */
  function interestingCuts(built: BuiltPayload): number[] {
    const p = built.payload;
    const manifestSize = built.result.payload.manifestSize;
    const head = dataStartOf(p);
    const cuts = new Set<number>();
    for (let k = 0; k <= 33; k++) cuts.add(k);
    for (let k = 33; k < HEADER_SIZE + manifestSize; k += 29) cuts.add(k);
    for (const edge of [HEADER_SIZE + manifestSize, head]) for (let d = -2; d <= 2; d++) cuts.add(edge + d);
    const manifest = format.decodeManifest(p.subarray(HEADER_SIZE, HEADER_SIZE + manifestSize));
    for (const op of manifest.operations) {
      for (const edge of [head + op.dataOffset, head + op.dataOffset + op.dataLength]) for (let d = -1; d <= 1; d++) cuts.add(edge + d);
      cuts.add(head + op.dataOffset + (op.dataLength >> 1));
    }
    cuts.add(p.length - 1);
    return [...cuts].filter((k) => k >= 0 && k <= p.length).sort((a, b) => a - b);
  }

  it('a payload cut into two pushes at any interesting point verifies the same', async () => {
    const payload = small.payload;
    const cuts = interestingCuts(small);
    expect(cuts.length).toBeGreaterThan(60);
    const mismatches: string[] = [];
    const expected = JSON.stringify(untimed(await applyBytes(payload, { trustedKeys: [signer.pub] })));
    for (const cut of cuts) {
      const result = JSON.stringify(untimed(await applyPayload(splitAt(payload, cut), { trustedKeys: [signer.pub] })));
      if (result !== expected) mismatches.push(`cut ${cut}: ${result}`);
    }
    expect(mismatches).toEqual([]);
  });

  it('a payload cut into three pushes around the head/data boundary verifies the same', async () => {
    const payload = small.payload;
    const head = dataStartOf(payload);
    const expected = JSON.stringify(untimed(await applyBytes(payload, { trustedKeys: [signer.pub] })));
    const failures: string[] = [];
    for (const a of [head - 77, head - 72, head - 1, head]) {
      for (const b of [a, a + 1, head + 1, head + 4096]) {
        const result = JSON.stringify(untimed(await applyPayload(splitAt(payload, a, b), { trustedKeys: [signer.pub] })));
        if (result !== expected) failures.push(`cuts ${a},${b}: ${result}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('empty chunks anywhere in the stream change nothing', async () => {
    const pieces: Uint8Array[] = [];
    for await (const c of chunksOf(small.payload, 5000)) pieces.push(c, new Uint8Array(0));
    async function* stream(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(0);
      yield* pieces;
    }
    const result = await applyPayload(stream(), { trustedKeys: [signer.pub] });
    expect(result.targetHash).toBe(small.result.targetHash);
  });
});

describe('PayloadReader', () => {
  it.each([1, 2, 7, 4095, 4097, 'whole'] as const)('emits the same events for %s-byte pushes', (chunking) => {
    const payload = small.payload;
    const collect = (c: Chunking) => {
      const reader = new PayloadReader();
      const events: string[] = [];
      let at = 0;
      for (const n of chunkSizes(payload.length, c)) {
        for (const e of reader.push(payload.subarray(at, at + n))) {
          events.push(e.kind === 'head' ? `head@${e.head.dataStart}` : `data ${e.index}: ${Buffer.from(e.blob).toString('base64').slice(0, 40)}/${e.blob.length}`);
        }
        at += n;
      }
      reader.end();
      return { events, offset: reader.offset };
    };
    const whole = collect('whole');
    expect(whole.events.length).toBe(1 + Object.values(small.result.operations).reduce((s, o) => s + o.count, 0));
    expect(collect(chunking)).toEqual(whole);
  });

  it('emits the same events for a two-piece split at every byte of the payload', () => {
    const payload = small.payload;
    const summary = (parts: Uint8Array[]) => {
      const reader = new PayloadReader();
      const events: string[] = [];
      for (const part of parts) {
        for (const e of reader.push(part)) events.push(e.kind === 'head' ? `head@${e.head.dataStart}` : `data ${e.index}/${e.blob.length}/${hex(e.blob.subarray(0, 8))}${hex(e.blob.subarray(-8))}`);
      }
      reader.end();
      return `${events.join(',')};${reader.offset}`;
    };
    const whole = summary([payload]);
    const failures: number[] = [];
    for (let cut = 0; cut <= payload.length; cut++) {
      if (summary([payload.subarray(0, cut), payload.subarray(cut)]) !== whole) failures.push(cut);
    }
    expect(failures).toEqual([]);
  });

  it('does not keep the chunks it is given (they may be reused by the caller)', async () => {
    const payload = small.payload;
    const scratch = new Uint8Array(1000);
    async function* reusing(): AsyncGenerator<Uint8Array> {
      for (let at = 0; at < payload.length; at += scratch.length) {
        const n = Math.min(scratch.length, payload.length - at);
        scratch.set(payload.subarray(at, at + n));
        yield scratch.subarray(0, n);
        scratch.fill(0xee); // the consumer has had its turn: clobber the buffer
      }
    }
    const target = join(dir, 'reused.img');
    await applyPayload(reusing(), { trustedKeys: [signer.pub], target });
    expect(firstDifference(await fsp.readFile(target), small.image)).toBe(-1);
  });
});
