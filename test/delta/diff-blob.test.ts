// The data blob of a SOURCE_DIFF operation: decodeDiffBlob refuses malformed headers before
// anything is decoded, a changed blob byte is a data hash mismatch, and a validly signed payload
// whose diff streams lie is refused (CORRUPT_PAYLOAD or an output HASH_MISMATCH) before that
// operation writes.
import { brotliCompressSync } from 'node:zlib';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPayload, format } from '../../dist/src/index.js';
import { Codec, decodeDiffBlob, encodeControl, encodeDiffBlob, type DiffStream } from '../../dist/src/format/diff.js';
import { DeltaCore } from '../../dist/src/wasm/delta.js';
import { blobStart, buildDelta, extentsOf, opName, proseBytes, targetRange, varint, xorByte, type BuiltDelta } from '../helpers/delta.js';
import { codeOf } from '../helpers/errors.js';
import {
  BLOCK, MiB, assemblePayload, atByteOffset, blockListHashRef, chunksOf, expectFastPatchError, firstDifference, flipped,
  makeKeyPair, patternBytes, randomBytes, removeDir, tempDir,
} from '../helpers/payloads.js';

/** A stream as encodeDiffBlob takes it (filter 0: none, for a format that has stream filters). */
const stream = (codec: number, rawLength: number, data: Uint8Array) => ({ codec, filter: 0, rawLength, data }) as DiffStream;
const stored = (data: Uint8Array) => stream(Codec.STORED, data.length, data);
const brotli = (data: Uint8Array, rawLength = data.length) => stream(Codec.BROTLI, rawLength, new Uint8Array(brotliCompressSync(data)));

describe('decodeDiffBlob', () => {
  const control = Uint8Array.of(5, 7, 0);
  const valid = encodeDiffBlob([brotli(control), stored(randomBytes(5, 1)), stored(randomBytes(7, 2))]);
  const OUTPUT = 12;
  const decode = (blob: Uint8Array, outputLength = OUTPUT) => decodeDiffBlob(blob, outputLength, 'operation 3 (SOURCE_DIFF)');
  /** `valid` with the u8/u32 header field at `offset` set to `value`. */
  const withField = (offset: number, size: 1 | 4, value: number) => {
    const blob = valid.slice();
    const v = new DataView(blob.buffer);
    if (size === 1) v.setUint8(offset, value);
    else v.setUint32(offset, value, true);
    return blob;
  };

  it('takes a valid blob apart, also as a view at an odd offset of a larger buffer', () => {
    for (const blob of [valid, atByteOffset(valid, 3)]) {
      const [c, d, e] = decode(blob);
      expect([c.codec, c.rawLength, d.rawLength, e.rawLength]).toEqual([Codec.BROTLI, 3, 5, 7]);
      expect(Buffer.from(d.data)).toEqual(Buffer.from(randomBytes(5, 1)));
      expect(Buffer.from(e.data)).toEqual(Buffer.from(randomBytes(7, 2)));
    }
  });

  it('refuses every truncation and a trailing byte with CORRUPT_PAYLOAD', () => {
    const codes = new Set<string>();
    for (let cut = 0; cut < valid.length; cut++) codes.add(codeOf(() => decode(valid.subarray(0, cut))));
    codes.add(codeOf(() => decode(Uint8Array.from([...valid, 0]))));
    expect([...codes]).toEqual(['CORRUPT_PAYLOAD']);
  });

  it.each([
    ['version 0', () => withField(0, 1, 0)],
    ['version 2', () => withField(0, 1, 2)],
    ['an unknown codec for the control stream', () => withField(1, 1, 2)],
    ['an unknown codec for the extra stream', () => withField(3, 1, 0xff)],
    ['a stored stream whose raw length is not its length', () => withField(8, 4, 6)],
    ['a raw length over 16 MiB', () => withField(4, 4, 16 * MiB + 1)],
    ['a raw length of 2^32 - 1', () => withField(4, 4, 0xffffffff)],
    ['a stream length past the end', () => withField(16, 4, 0xffffffff)],
    ['stream lengths one short of the blob', () => withField(16, 4, valid.length - 28 - 12 - 1)],
    ['a header only', () => valid.subarray(0, 28)],
  ])('%s: CORRUPT_PAYLOAD naming the operation', (_name, blob) => {
    expect(codeOf(() => decode(blob()))).toBe('CORRUPT_PAYLOAD');
    expect(() => decode(blob())).toThrow(/^operation 3 \(SOURCE_DIFF\): /);
  });

  it('difference and extra streams that do not add up to the output: CORRUPT_PAYLOAD', () => {
    expect(codeOf(() => decode(valid, OUTPUT - 1))).toBe('CORRUPT_PAYLOAD');
    expect(codeOf(() => decode(valid, OUTPUT + 1))).toBe('CORRUPT_PAYLOAD');
  });

  it('any value in any header byte: CORRUPT_PAYLOAD, or streams consistent with the blob and the output', () => {
    const problems: string[] = [];
    for (let at = 0; at < 28; at++) {
      for (const value of [0, 1, 2, 3, 5, 7, 0x10, 0x7f, 0x80, 0xff]) {
        const blob = withField(at, 1, value);
        try {
          const streams = decode(blob);
          const total = streams.reduce((n, s) => n + s.data.length, 0);
          if (28 + total !== blob.length) problems.push(`byte ${at} = ${value}: streams cover ${total} bytes`);
          if (streams[1].rawLength + streams[2].rawLength !== OUTPUT) problems.push(`byte ${at} = ${value}: raw lengths do not add up`);
          if (streams.some((s) => s.codec === Codec.STORED && s.rawLength !== s.data.length)) problems.push(`byte ${at} = ${value}: stored length`);
        } catch (err) {
          if (codeOf(() => { throw err; }) !== 'CORRUPT_PAYLOAD') problems.push(`byte ${at} = ${value}: ${String(err)}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('SOURCE_DIFF data in signed payloads', () => {
  const signer = makeKeyPair();
  let dir: string;
  let d: BuiltDelta;
  let source: Uint8Array;
  let target: Uint8Array;
  /** Index of the SOURCE_DIFF operation under test (an operation before it writes). */
  let index: number;
  let counter = 0;

  beforeAll(async () => {
    dir = await tempDir('delta-blob');
    const a = randomBytes(40 * BLOCK, 61);
    const b = proseBytes(40 * BLOCK, 62);
    source = new Uint8Array(Buffer.concat([a, b, randomBytes(3000, 63)]));
    const edited = b.slice();
    edited.set(new TextEncoder().encode('This sentence is new in release 2.'), 50_000);
    target = new Uint8Array(Buffer.concat([a, edited, randomBytes(5000, 64)]));
    // Format 1: brotli diffs only, so the range under test is a SOURCE_DIFF (format 2 may pick zstd).
    d = await buildDelta(dir, 'blob', source, target, { keys: [signer.key], formatVersion: 1 });
    index = d.manifest.operations.findIndex((op, i) => i > 0 && opName(op) === 'SOURCE_DIFF');
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  /** Applies `payload` onto a pattern file; returns the error (if any) and the file's bytes before and after. */
  async function applyOnPattern(payload: Uint8Array) {
    const path = join(dir, `t-${counter++}.img`);
    const before = patternBytes(target.length + 100, counter);
    await fsp.writeFile(path, before);
    const err = await applyPayload(chunksOf(payload), { trustedKeys: [signer.pub], source: d.sourcePath, target: path }).then(() => undefined, (e: unknown) => e);
    return { err, before, after: new Uint8Array(await fsp.readFile(path)) };
  }

  /** The payload re-made and signed with operation `index` carrying `blob` (and `patch` applied to it). */
  function resigned(blob: Uint8Array, patch: Partial<format.Operation> = {}): Uint8Array {
    const blobs = d.manifest.operations.map((op, i) => (i === index ? blob : d.payload.subarray(blobStart(d.payload, d.manifest, i), blobStart(d.payload, d.manifest, i) + op.dataLength)));
    let offset = 0;
    const operations = d.manifest.operations.map((op, i) => {
      const o = i === index ? { ...op, dataLength: blob.length, dataHash: Buffer.from(blockListHashRef(blob), 'hex'), ...patch } : { ...op };
      o.dataOffset = offset;
      offset += o.dataLength;
      return o;
    });
    return assemblePayload({ ...d.manifest, operations }, blobs, [signer.key]);
  }

  /** The operation's true source and output, and a valid stored encoding of one from the other. */
  function parts() {
    const op = d.manifest.operations[index]!;
    const src = extentsOf(source, op.srcExtents);
    const [start, end] = targetRange(d.manifest, op);
    const out = target.subarray(start, end);
    const enc = new DeltaCore().diffEncode(src, out)!;
    return { start, src, out, ctrl: encodeControl(enc.entries), diff: enc.diff, extra: enc.extra };
  }

  const nothingFrom = (start: number, r: { before: Uint8Array; after: Uint8Array }) => firstDifference(r.after.subarray(start), r.before.subarray(start));

  it('the payload has a SOURCE_DIFF after an operation that writes, and a hand-made valid blob for it applies', async () => {
    expect(index).toBeGreaterThan(0);
    const { ctrl, diff, extra } = parts();
    const r = await applyOnPattern(resigned(encodeDiffBlob([stored(ctrl), stored(diff), stored(extra)])));
    expect(r.err).toBeUndefined();
    expect(firstDifference(r.after.subarray(0, target.length), target)).toBe(-1);
  });

  it.each([
    ['its first byte (the blob version)', () => 0],
    ['a header length field', () => 17],
    ['its middle', () => d.manifest.operations[index]!.dataLength >> 1],
    ['its last byte', () => d.manifest.operations[index]!.dataLength - 1],
  ])('a changed byte in the diff blob, at %s: HASH_MISMATCH (exit 4) on its data, nothing written from it on', async (_name, offset) => {
    const r = await applyOnPattern(flipped(d.payload, blobStart(d.payload, d.manifest, index) + offset()));
    expectFastPatchError(r.err, 'HASH_MISMATCH', 4);
    expect(r.err.message).toBe(`operation ${index} (SOURCE_DIFF): data does not match its signed hash`);
    expect(nothingFrom(targetRange(d.manifest, d.manifest.operations[index]!)[0], r)).toBe(-1);
  });

  it.each([
    ['an entry reading past its source', (p: ReturnType<typeof parts>) => [stored(Uint8Array.from([...varint(p.out.length), 0, ...varint(p.src.length * 2)])), stored(new Uint8Array(p.out.length)), stored(new Uint8Array(0))], /reads outside the operation's source/],
    ['a number of 2^32 in the control stream', (p: ReturnType<typeof parts>) => [stored(Uint8Array.from([...varint(2 ** 32), 0, 0])), stored(new Uint8Array(p.out.length)), stored(new Uint8Array(0))], /control stream is malformed/],
    ['streams that do not add up to the output', (p: ReturnType<typeof parts>) => [stored(p.ctrl), stored(p.diff), stored(Uint8Array.from([...p.extra, 0]))], /difference and extra streams hold/],
    ['a brotli stream that decodes to more than announced', (p: ReturnType<typeof parts>) => [stored(Uint8Array.from([1, ...varint(p.out.length - 1), 0])), stored(Uint8Array.of(0)), brotli(p.out, p.out.length - 1)], /extra stream does not decode to/],
    ['a brotli stream that decodes to less than announced', (p: ReturnType<typeof parts>) => [stored(Uint8Array.from([0, ...varint(p.out.length), 0])), stored(Uint8Array.of()), brotli(p.out.subarray(1), p.out.length)], /extra stream decodes to \d+ bytes, not/],
    ['a brotli stream that is not brotli', (p: ReturnType<typeof parts>) => [stored(Uint8Array.from([0, ...varint(p.out.length), 0])), stored(Uint8Array.of()), stream(Codec.BROTLI, p.out.length, randomBytes(300, 65))], /extra stream does not decode to/],
    ['an unknown codec', (p: ReturnType<typeof parts>) => [stream(9, p.ctrl.length, p.ctrl), stored(p.diff), stored(p.extra)], /unknown codec 9/],
  ] as const)('a signed blob with %s: CORRUPT_PAYLOAD (exit 4), nothing written from it on', async (_name, streams, message) => {
    const p = parts();
    const r = await applyOnPattern(resigned(encodeDiffBlob(streams(p) as [DiffStream, DiffStream, DiffStream])));
    expectFastPatchError(r.err, 'CORRUPT_PAYLOAD', 4);
    expect(r.err.message).toMatch(new RegExp(`^operation ${index} \\(SOURCE_DIFF\\): `));
    expect(r.err.message).toMatch(message);
    expect(nothingFrom(p.start, r)).toBe(-1);
  });

  it('a signed, well-formed blob that makes other bytes: HASH_MISMATCH on its output, nothing written from it on', async () => {
    const p = parts();
    const diff = p.diff.slice();
    xorByte(diff, diff.length >> 1, 0x40);
    const r = await applyOnPattern(resigned(encodeDiffBlob([stored(p.ctrl), stored(diff), stored(p.extra)])));
    expectFastPatchError(r.err, 'HASH_MISMATCH', 4);
    expect(r.err.message).toBe(`operation ${index} (SOURCE_DIFF): output does not match its signed hash`);
    expect(nothingFrom(p.start, r)).toBe(-1);
  });

  it('a signed SOURCE_DIFF with no source extents (all extra bytes): applied exactly, or refused with CORRUPT_PAYLOAD; never a crash', async () => {
    const p = parts();
    const blob = encodeDiffBlob([stored(Uint8Array.from([0, ...varint(p.out.length), 0])), stored(new Uint8Array(0)), brotli(p.out)]);
    const r = await applyOnPattern(resigned(blob, { srcExtents: [], sourceHash: undefined }));
    if (r.err === undefined) expect(firstDifference(r.after.subarray(0, target.length), target)).toBe(-1);
    else expectFastPatchError(r.err, 'CORRUPT_PAYLOAD', 4);
  });
});
