// BlockListHasher (the payload format's block-list hash) against a node:crypto reference.
import { describe, expect, it } from 'vitest';
import { BlockListHasher, blockListHash } from '../../dist/src/wasm/block-list.js';
import { WasmCore } from '../../dist/src/wasm/core.js';
import { blockDigestsRef, blockListHashRef, BUILDS, hex, seededBytes, seededInts, sha256Ref, shifted } from './helpers.js';

describe.each(BUILDS)('BlockListHasher (%s build)', (build) => {
  const core = WasmCore.load(build);

  it('is the SHA-256 of nothing for empty input', () => {
    expect(hex(blockListHash(core, new Uint8Array(0)))).toBe(hex(sha256Ref(new Uint8Array(0))));
    const h = new BlockListHasher(core);
    expect(h.blocks).toBe(0);
    expect(hex(h.digest())).toBe(hex(sha256Ref(new Uint8Array(0))));
  });

  it.each([1, 4095, 4096, 4097, 5 * 4096, 5 * 4096 + 3, 9 * 1024 * 1024 + 1])('matches the reference for %i bytes in one call', (size) => {
    const data = seededBytes(size, size);
    expect(hex(blockListHash(core, shifted(data, 1)))).toBe(hex(blockListHashRef(data)));
  });

  it('gives the same hash for any chunking into multiples of 4096 and a short last piece', () => {
    const next = seededInts(5);
    const data = seededBytes(6 * 1024 * 1024 + 1234, 6);
    const expected = hex(blockListHashRef(data));
    for (let trial = 0; trial < 5; trial++) {
      const h = new BlockListHasher(core);
      let pos = 0;
      while (data.length - pos >= 4096) {
        const n = 4096 * (1 + next(trial < 2 ? 4 : 1500));
        if (pos + n > data.length) break;
        h.update(data.subarray(pos, pos + n));
        pos += n;
      }
      h.update(data.subarray(pos));
      expect(h.blocks).toBe(Math.ceil(data.length / 4096));
      expect(hex(h.digest()), `trial ${trial}`).toBe(expected);
    }
  });

  it('mixes precomputed digests with data', () => {
    const data = seededBytes(10 * 4096 + 99, 7);
    const digests = blockDigestsRef(data);
    const h = new BlockListHasher(core)
      .update(data.subarray(0, 3 * 4096))
      .updateDigests(digests.subarray(3 * 32, 8 * 32))
      .update(data.subarray(8 * 4096));
    expect(h.blocks).toBe(11);
    expect(hex(h.digest())).toBe(hex(blockListHashRef(data)));
    expect(hex(new BlockListHasher(core).updateDigests(digests).digest())).toBe(hex(blockListHashRef(data)));
  });

  it('refuses anything after a short piece, and anything after digest()', () => {
    const h = new BlockListHasher(core).update(new Uint8Array(5000));
    expect(() => h.update(new Uint8Array(4096))).toThrow(RangeError);
    expect(() => h.updateDigests(new Uint8Array(32))).toThrow(RangeError);
    h.digest();
    expect(() => h.digest()).toThrow(Error);
    expect(() => new BlockListHasher(core).updateDigests(new Uint8Array(33))).toThrow(/digests/);
    const done = new BlockListHasher(core);
    done.digest();
    expect(() => done.update(new Uint8Array(4096))).toThrow(Error);
  });
});
