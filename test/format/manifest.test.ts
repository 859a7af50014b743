import { describe, expect, it } from 'vitest';
import { format } from '../../dist/src/index.js';
import { codeOf } from '../helpers/errors.js';

const { encodeManifest, decodeManifest, validateManifest, encodeHeader, decodeHeader, OpType, LIMITS, HEADER_SIZE } = format;
type Manifest = format.Manifest;
type Operation = format.Operation;

const h = (fill: number) => new Uint8Array(32).fill(fill);

function op(type: number, startBlock: number, blockCount: number, dataOffset: number, dataLength: number): Operation {
  return {
    type,
    dataOffset,
    dataLength,
    dataHash: dataLength > 0 ? h(1) : undefined,
    outputHash: h(2),
    sourceHash: undefined,
    srcExtents: [],
    dstExtents: [{ startBlock, blockCount }],
  };
}

/** A source-reading operation of a delta: `src` as [start, count] pairs. */
function srcOp(type: number, startBlock: number, blockCount: number, src: Array<[number, number]>, dataOffset = 0, dataLength = 0): Operation {
  return { ...op(type, startBlock, blockCount, dataOffset, dataLength), sourceHash: src.length > 0 ? h(4) : undefined, srcExtents: src.map(([startBlock, blockCount]) => ({ startBlock, blockCount })) };
}

/** A delta manifest over a 20-block source. */
function delta(ops: Operation[], targetSize = 10 * 4096): Manifest {
  return { ...manifest(ops, targetSize), sourceSize: 20 * 4096, sourceHash: h(5) };
}

function manifest(ops: Operation[], targetSize = 10 * 4096): Manifest {
  return { blockSize: 4096, targetSize, targetHash: h(3), sourceSize: 0, sourceHash: h(0), version: '1.2.0', sourceVersion: '', operations: ops };
}

describe('manifest encoding', () => {
  const good = manifest([op(OpType.REPLACE, 0, 2, 0, 8192), op(OpType.ZERO, 2, 6, 8192, 0), op(OpType.REPLACE_DEFLATE, 8, 2, 8192, 100)]);

  it("a delta's source version: after the release version, 1 + W bytes, '' allowed; none in a full payload", () => {
    const d = { ...delta([srcOp(OpType.SOURCE_COPY, 0, 0, [[0, 2]], 0, 2)]), sourceVersion: '1.4.2' };
    const bytes = encodeManifest(d);
    expect(decodeManifest(bytes).sourceVersion).toBe('1.4.2');
    expect(bytes.length).toBe(encodeManifest({ ...d, sourceVersion: '' }).length + 5);
    // Offset 88 is the version length; the source version length follows the version.
    expect(bytes[89 + bytes[88]!]).toBe(5);
    expect(new TextDecoder().decode(bytes.subarray(90 + bytes[88]!, 95 + bytes[88]!))).toBe('1.4.2');
    const bad = Uint8Array.from(bytes);
    bad[89 + bad[88]!] = 65;
    expect(codeOf(() => decodeManifest(bad))).toBe('CORRUPT_PAYLOAD');
    bad[89 + bad[88]!] = 5;
    bad[90 + bad[88]!] = 0x20; // a space
    expect(codeOf(() => decodeManifest(bad))).toBe('CORRUPT_PAYLOAD');
    expect(() => encodeManifest({ ...good, sourceVersion: '1.0' })).toThrow(RangeError);
    expect(decodeManifest(encodeManifest(good)).sourceVersion).toBe('');
  });

  it('round-trips every field', () => {
    const bytes = encodeManifest(good);
    const back = decodeManifest(bytes);
    expect(back.version).toBe('1.2.0');
    expect(back.targetSize).toBe(good.targetSize);
    expect([...back.targetHash]).toEqual([...good.targetHash]);
    expect(back.operations).toHaveLength(3);
    back.operations.forEach((o, i) => {
      const want = good.operations[i]!;
      expect(o.type).toBe(want.type);
      expect(o.dataOffset).toBe(want.dataOffset);
      expect(o.dataLength).toBe(want.dataLength);
      expect(o.dataHash === undefined).toBe(want.dataHash === undefined);
      expect(o.dstExtents).toEqual(want.dstExtents);
    });
    expect(() => validateManifest(back, 8292)).not.toThrow();
  });

  it('sizes records as documented in docs/FORMAT.md (96 bytes per data op, 64 per ZERO)', () => {
    const base = encodeManifest(manifest([])).length;
    expect(base).toBe(88 + 1 + 5 + 4);
    expect(encodeManifest(manifest([op(OpType.REPLACE, 0, 10, 0, 40960)])).length - base).toBe(96);
    expect(encodeManifest(manifest([op(OpType.ZERO, 0, 10, 0, 0)])).length - base).toBe(64);
  });

  it('refuses versions the format cannot carry', () => {
    for (const version of ['', 'a b', 'x'.repeat(65), '-1', '1.0\n']) {
      expect(() => encodeManifest({ ...good, version })).toThrow(RangeError);
    }
  });

  it('refuses every truncation of a valid manifest', () => {
    const bytes = encodeManifest(good);
    for (let cut = 0; cut < bytes.length; cut++) {
      expect(codeOf(() => decodeManifest(bytes.subarray(0, cut)))).toBe('CORRUPT_PAYLOAD');
    }
  });

  it('refuses trailing bytes after the last operation', () => {
    const bytes = encodeManifest(good);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(codeOf(() => decodeManifest(longer))).toBe('CORRUPT_PAYLOAD');
  });

  it('refuses huge counts before sizing anything by them', () => {
    const bytes = encodeManifest(manifest([]));
    const view = new DataView(bytes.buffer);
    const countAt = bytes.length - 4;
    for (const count of [1, 0xffff, LIMITS.MAX_OPS + 1, 0xffffffff]) {
      view.setUint32(countAt, count, true);
      // Refused by the count check itself, before anything is sized or looped over by the count
      // (not by running out of bytes while decoding operation after operation).
      expect(codeOf(() => decodeManifest(bytes))).toBe('CORRUPT_PAYLOAD');
      expect(() => decodeManifest(bytes)).toThrow(new RegExp(`^operation count ${count} does not fit the manifest`));
    }
  });

  it('refuses 64-bit fields beyond 2^53', () => {
    const bytes = encodeManifest(good);
    new DataView(bytes.buffer).setBigUint64(8, 1n << 60n, true);
    expect(codeOf(() => decodeManifest(bytes))).toBe('CORRUPT_PAYLOAD');
  });
});

describe('manifest validation', () => {
  const cases: Array<[string, Manifest, number]> = [
    ['block size other than 4096', { ...manifest([op(OpType.ZERO, 0, 10, 0, 0)]), blockSize: 512 }, 0],
    ['unknown operation type', manifest([op(9, 0, 10, 0, 0)]), 0],
    ['a source operation in a full payload', manifest([srcOp(OpType.SOURCE_COPY, 0, 10, [[0, 10]])]), 0],
    ['extent past the end', manifest([op(OpType.ZERO, 0, 11, 0, 0)]), 0],
    ['empty extent', manifest([op(OpType.ZERO, 0, 0, 0, 0), op(OpType.ZERO, 0, 10, 0, 0)]), 0],
    ['overlapping writes', manifest([op(OpType.ZERO, 0, 6, 0, 0), op(OpType.ZERO, 5, 5, 0, 0)]), 0],
    ['a gap in a full payload', manifest([op(OpType.ZERO, 0, 9, 0, 0)]), 0],
    ['data offsets not contiguous', manifest([op(OpType.REPLACE_DEFLATE, 0, 5, 0, 10), op(OpType.REPLACE_DEFLATE, 5, 5, 11, 10)]), 21],
    ['data size disagrees with header', manifest([op(OpType.REPLACE_DEFLATE, 0, 10, 0, 10)]), 11],
    ['REPLACE length differs from its extents', manifest([op(OpType.REPLACE, 0, 10, 0, 100)]), 100],
    ['ZERO with data', manifest([op(OpType.ZERO, 0, 10, 0, 5)]), 5],
    ['deflate output above the limit', manifest([op(OpType.REPLACE_DEFLATE, 0, 5000, 0, 10)], 5000 * 4096), 10],
    ['source extent past the source', delta([srcOp(OpType.SOURCE_COPY, 0, 10, [[15, 10]])]), 0],
    ['empty source extent', delta([srcOp(OpType.SOURCE_COPY, 0, 10, [[0, 10], [12, 0]])]), 0],
    ['copy of fewer blocks than it writes', delta([srcOp(OpType.SOURCE_COPY, 0, 10, [[0, 9]])]), 0],
    ['copy carrying data', delta([srcOp(OpType.SOURCE_COPY, 0, 10, [[0, 10]], 0, 5)]), 5],
    ['diff without data', delta([srcOp(OpType.SOURCE_DIFF, 0, 10, [[0, 10]])]), 0],
    ['source extents on a REPLACE', delta([{ ...op(OpType.REPLACE, 0, 10, 0, 40960), srcExtents: [{ startBlock: 0, blockCount: 1 }] }]), 40960],
    ['more source than one operation may read', { ...delta([srcOp(OpType.SOURCE_DIFF, 0, 10, [[0, 4097]], 0, 10)]), sourceSize: 5000 * 4096 }, 10],
    ['a gap in a delta', delta([srcOp(OpType.SOURCE_COPY, 0, 5, [[0, 5]]), srcOp(OpType.SOURCE_COPY, 6, 4, [[0, 4]])]), 0],
  ];
  it.each(cases)('refuses %s', (_name, m, dataSize) => {
    expect(codeOf(() => validateManifest(m, dataSize))).toBe('CORRUPT_PAYLOAD');
  });

  it('accepts a short last block', () => {
    const m = manifest([op(OpType.REPLACE, 0, 3, 0, 2 * 4096 + 100)], 2 * 4096 + 100);
    expect(() => validateManifest(m, 2 * 4096 + 100)).not.toThrow();
  });

  it('accepts a delta reading source blocks anywhere, in any order, and a diff with no source', () => {
    const m = delta([srcOp(OpType.SOURCE_COPY, 0, 4, [[19, 1], [0, 3]]), srcOp(OpType.SOURCE_DIFF, 4, 4, [[3, 17]], 0, 10), srcOp(OpType.SOURCE_DIFF, 8, 2, [], 10, 5)]);
    expect(() => validateManifest(m, 15)).not.toThrow();
    expect(decodeManifest(encodeManifest(m))).toEqual(m);
  });

  it('accepts an empty image with no operations', () => {
    expect(() => validateManifest(manifest([], 0), 0)).not.toThrow();
  });
});

describe('header', () => {
  const good = { version: 1, manifestSize: 100, signaturesSize: 4 + 72, dataSize: 12345 };

  it('round-trips and asks for more bytes when short', () => {
    const bytes = encodeHeader(good);
    expect(bytes.length).toBe(HEADER_SIZE);
    expect(decodeHeader(bytes)).toEqual(good);
    expect(decodeHeader(bytes.subarray(0, 10))).toEqual({ need: HEADER_SIZE - 10 });
  });

  const bad: Array<[string, (v: DataView) => void]> = [
    ['magic', (v) => v.setUint8(0, 0x47)],
    ['version', (v) => v.setUint32(8, 3, true)],
    ['manifest size 0', (v) => v.setUint32(12, 0, true)],
    ['manifest size above the limit', (v) => v.setUint32(12, LIMITS.MAX_MANIFEST_SIZE + 1, true)],
    ['no signatures', (v) => v.setUint32(16, 4, true)],
    ['17 signatures', (v) => v.setUint32(16, 4 + 17 * 72, true)],
    ['signature size not a whole entry', (v) => v.setUint32(16, 4 + 71, true)],
    ['flags', (v) => v.setUint32(20, 1, true)],
    ['data size beyond 2^53', (v) => v.setBigUint64(24, 1n << 62n, true)],
  ];
  it.each(bad)('refuses a bad %s', (_name, mutate) => {
    const bytes = encodeHeader(good);
    mutate(new DataView(bytes.buffer));
    expect(codeOf(() => decodeHeader(bytes))).toBe('CORRUPT_PAYLOAD');
  });
});
