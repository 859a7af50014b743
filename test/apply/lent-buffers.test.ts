// Decode jobs put outputs and digests into buffers the main thread lends (apply/decode.ts), and
// hand back the ones they did not use; a job whose data fails its hash writes nothing into them.
import { createHash } from 'node:crypto';
import { deflateRawSync, zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeOperation } from '../../dist/src/apply/decode.js';
import { format } from '../../dist/src/index.js';
import { WasmCore } from '../../dist/src/wasm/core.js';
import { BLOCK, blockListHashRef, randomBytes } from '../helpers/payloads.js';

const core = WasmCore.load('release');
const hash = (data: Uint8Array) => Buffer.from(blockListHashRef(data), 'hex');
/** The per-block SHA-256 digests of `data`, computed here without WASM. */
function digestsOf(data: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += BLOCK) parts.push(createHash('sha256').update(data.subarray(at, at + BLOCK)).digest());
  return Buffer.concat(parts);
}

const output = new Uint8Array(64 * BLOCK);
output.set(randomBytes(20 * BLOCK, 3)); // the rest zero: compresses
const deflated = deflateRawSync(output);
const digestLength = (output.length / BLOCK) * 32;

describe('lent output and digest buffers', () => {
  it('REPLACE_DEFLATE inflates into the lent output buffer and hashes into the lent digests', () => {
    const out = new Uint8Array(output.length).fill(0xee);
    const digests = new Uint8Array(digestLength);
    const r = decodeOperation(core, { index: 0, type: format.OpType.REPLACE_DEFLATE, blob: deflated, dataHash: hash(deflated), outputLength: output.length, out, digests });
    expect(r.output.buffer).toBe(out.buffer);
    expect(Buffer.compare(out, output)).toBe(0);
    expect(r.digests.buffer).toBe(digests.buffer);
    expect(Buffer.compare(digests, digestsOf(output))).toBe(0);
    expect(r.spare).toBeUndefined();
    expect(r.spareDigests).toBeUndefined();
  });

  it('REPLACE_ZSTD and SOURCE_ZSTD decompress straight into the lent output buffer', () => {
    const frame = zstdCompressSync(output);
    const out = new Uint8Array(output.length).fill(0xee);
    const digests = new Uint8Array(digestLength);
    const r = decodeOperation(core, { index: 0, type: format.OpType.REPLACE_ZSTD, blob: frame, dataHash: hash(frame), outputLength: output.length, out, digests });
    expect(r.output.buffer).toBe(out.buffer);
    expect(Buffer.compare(out, output)).toBe(0);
    expect(Buffer.compare(digests, digestsOf(output))).toBe(0);
    expect(r.spare).toBeUndefined();
    // The source as a dictionary: a frame that only refers back into it.
    const source = Uint8Array.from(output);
    const patch = zstdCompressSync(output, { dictionary: source });
    const into = new Uint8Array(output.length);
    const s = decodeOperation(core, { index: 1, type: format.OpType.SOURCE_ZSTD, blob: patch, dataHash: hash(patch), outputLength: output.length, source, sourceHash: hash(source), out: into });
    expect(s.output.buffer).toBe(into.buffer);
    expect(Buffer.compare(into, output)).toBe(0);
    expect(s.source?.buffer).toBe(source.buffer);
  });

  it('a frame that fills the lent buffer and has more is refused, and so is one byte after a frame that fits exactly', () => {
    const longer = zstdCompressSync(Buffer.concat([output, Buffer.alloc(1, 9)]));
    expect(() => decodeOperation(core, { index: 2, type: format.OpType.REPLACE_ZSTD, blob: longer, dataHash: hash(longer), outputLength: output.length, out: new Uint8Array(output.length) }))
      .toThrow(/operation 2 \(REPLACE_ZSTD\): zstd data does not decode to 262144 bytes \(more than 262144 bytes of output\)/);
    const trailing = Buffer.concat([zstdCompressSync(output), Buffer.alloc(1)]);
    expect(() => decodeOperation(core, { index: 3, type: format.OpType.REPLACE_ZSTD, blob: trailing, dataHash: hash(trailing), outputLength: output.length, out: new Uint8Array(output.length) }))
      .toThrow(/operation 3 \(REPLACE_ZSTD\)/);
    // Without a lent buffer (or one of another length) the output gets a buffer of its own.
    const frame = zstdCompressSync(output);
    const other = new Uint8Array(output.length + 1);
    const r = decodeOperation(core, { index: 4, type: format.OpType.REPLACE_ZSTD, blob: frame, dataHash: hash(frame), outputLength: output.length, out: other });
    expect(Buffer.compare(r.output, output)).toBe(0);
    expect(r.spare?.buffer).toBe(other.buffer);
  });

  it('REPLACE keeps its blob as output and hands the unused output buffer back', () => {
    const out = new Uint8Array(output.length);
    const digests = new Uint8Array(digestLength);
    const r = decodeOperation(core, { index: 0, type: format.OpType.REPLACE, blob: output, dataHash: hash(output), outputLength: output.length, out, digests });
    expect(r.output.buffer).toBe(output.buffer);
    expect(r.spare?.buffer).toBe(out.buffer);
    expect(r.digests.buffer).toBe(digests.buffer);
    expect(Buffer.compare(digests, digestsOf(output))).toBe(0);
  });

  it('a digests buffer of the wrong length is handed back, not written past', () => {
    const digests = new Uint8Array(digestLength - 32).fill(7);
    const r = decodeOperation(core, { index: 0, type: format.OpType.REPLACE_DEFLATE, blob: deflated, dataHash: hash(deflated), outputLength: output.length, digests });
    expect(r.spareDigests?.buffer).toBe(digests.buffer);
    expect(digests.every((b) => b === 7)).toBe(true);
    expect(Buffer.compare(r.digests, digestsOf(output))).toBe(0);
  });

  it('a blob that fails its signed hash leaves the lent buffers untouched', () => {
    const tampered = Uint8Array.from(deflated);
    tampered[10]! ^= 1;
    const out = new Uint8Array(output.length).fill(0xee);
    const digests = new Uint8Array(digestLength).fill(0xee);
    expect(() => decodeOperation(core, { index: 3, type: format.OpType.REPLACE_DEFLATE, blob: tampered, dataHash: hash(deflated), outputLength: output.length, out, digests }))
      .toThrow(/operation 3 \(REPLACE_DEFLATE\): data does not match its signed hash/);
    expect(out.every((b) => b === 0xee)).toBe(true);
    expect(digests.every((b) => b === 0xee)).toBe(true);
  });
});
