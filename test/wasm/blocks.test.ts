// Per-block SHA-256, zero-block flags and digest comparison of the WASM core.
import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE, DIGEST_SIZE, WasmCore } from '../../dist/src/wasm/core.js';
import { blockDigestsRef, BUILDS, hex, seededBytes, shifted } from './helpers.js';

const digestsOf = (core: WasmCore, data: Uint8Array): Uint8Array => {
  const out = new Uint8Array(Math.ceil(data.length / BLOCK_SIZE) * DIGEST_SIZE);
  expect(core.blockDigestsInto(data, out)).toBe(Math.ceil(data.length / BLOCK_SIZE));
  return out;
};

describe.each(BUILDS)('per-block SHA-256 (%s build)', (build) => {
  const core = WasmCore.load(build);

  it('loads once per build and exposes a 4 MiB window', () => {
    expect(WasmCore.load(build)).toBe(core);
    expect(core.build).toBe(build);
    expect(core.windowSize).toBe(4 * 1024 * 1024);
    expect(core.window().length).toBe(core.windowSize);
    expect(core.window().buffer).toBe(core.window().buffer);
  });

  it.each([0, 1, 55, 56, 63, 64, 65, 4095, 4096, 4097, 2 * 4096, 3 * 4096 + 1, 4 * 4096, 5 * 4096 + 7,
    8 * 4096, 11 * 4096 + 4095, 9 * 1024 * 1024 + 300])('random data of %i bytes matches node:crypto per block', (size) => {
    const data = seededBytes(size, size + 1);
    expect(hex(digestsOf(core, data))).toBe(hex(blockDigestsRef(data)));
  });

  it('gets the same digests at any byteOffset and outOffset', () => {
    const data = seededBytes(6 * 4096 + 100, 9);
    const expected = hex(blockDigestsRef(data));
    for (const shift of [1, 2, 13]) {
      const out = new Uint8Array(7 * 32 + 50);
      expect(core.blockDigestsInto(shifted(data, shift), out, 50)).toBe(7);
      expect(hex(out.subarray(50))).toBe(expected);
    }
  });

  it('hashes a block correctly at every lane position of the 8- and 4-block groups', () => {
    // One distinct block at position p among zero blocks: 15 blocks are one 8-block group, one
    // 4-block group and three blocks on the scalar path.
    const blocks = 15;
    for (let p = 0; p < blocks; p++) {
      const data = new Uint8Array(blocks * BLOCK_SIZE);
      data.set(seededBytes(BLOCK_SIZE, 100 + p), p * BLOCK_SIZE);
      expect(hex(digestsOf(core, data)), `block at ${p}`).toBe(hex(blockDigestsRef(data)));
    }
    // Every block different, every mix of groups from 1 to 17 blocks, with and without a short tail.
    for (let n = 1; n <= 17; n++) {
      for (const tail of [0, 1, 4095]) {
        const data = seededBytes(n * BLOCK_SIZE + tail, n * 31 + tail);
        expect(hex(digestsOf(core, data)), `${n} blocks + ${tail}`).toBe(hex(blockDigestsRef(data)));
      }
    }
  });

  it('hashes runs of data blocks of every length between zero blocks', () => {
    // Zero blocks take a known digest and only the runs between them are hashed, so each run starts
    // its own 8-block, 4-block and scalar groups.
    const runs = [9, 1, 8, 2, 12, 3, 4, 1, 16, 5, 7, 6, 13, 1, 17];
    const total = runs.reduce((sum, n) => sum + n, 0);
    const data = new Uint8Array(total * BLOCK_SIZE + 1000);
    let at = 0;
    runs.forEach((n, i) => {
      if (i % 2 === 0) data.set(seededBytes(n * BLOCK_SIZE, 500 + i), at * BLOCK_SIZE);
      at += n;
    });
    data.set(seededBytes(1000, 499), total * BLOCK_SIZE);
    expect(hex(digestsOf(core, data))).toBe(hex(blockDigestsRef(data)));
  });

  it('hashWindowBlocksInto hashes data read straight into the window', () => {
    const data = seededBytes(core.windowSize, 77);
    core.window().set(data);
    const count = core.windowSize / BLOCK_SIZE;
    const out = new Uint8Array(count * DIGEST_SIZE + 3);
    expect(core.hashWindowBlocksInto(core.windowSize, out, 3)).toBe(count);
    expect(hex(out.subarray(3))).toBe(hex(blockDigestsRef(data)));
    expect(core.hashWindowBlocksInto(5000, out)).toBe(2);
    expect(hex(out.subarray(0, 64))).toBe(hex(blockDigestsRef(data.subarray(0, 5000))));
    expect(core.hashWindowBlocksInto(0, new Uint8Array(0))).toBe(0);
  });

  it('blockDigestsInto uses a view of the window in place', () => {
    const data = seededBytes(3 * 4096 + 10, 5);
    core.window().set(data, 8192);
    const view = core.window().subarray(8192, 8192 + data.length);
    expect(hex(digestsOf(core, view))).toBe(hex(blockDigestsRef(data)));
  });
});

describe.each(BUILDS)('zero-block flags (%s build)', (build) => {
  const core = WasmCore.load(build);

  it('flags zero blocks, and blocks with one non-zero byte first, last or in the middle as non-zero', () => {
    const data = new Uint8Array(6 * BLOCK_SIZE + 100);
    data[1 * BLOCK_SIZE] = 1; // first byte of block 1
    data[3 * BLOCK_SIZE - 1] = 0x80; // last byte of block 2
    data[4 * BLOCK_SIZE + 2049] = 0xff; // middle of block 4
    const flags = new Uint8Array(7);
    expect(core.zeroBlockFlagsInto(data, flags)).toBe(4);
    expect([...flags]).toEqual([1, 0, 0, 1, 0, 1, 1]);
    data[data.length - 1] = 2; // last byte of the short last piece
    expect(core.zeroBlockFlagsInto(data, flags)).toBe(3);
    expect(flags[6]).toBe(0);
  });

  it('checks every byte position of a short piece', () => {
    for (const size of [1, 7, 8, 9, 63, 64, 65, 100, 4095]) {
      for (let i = 0; i < size; i += size > 100 ? 97 : 1) {
        const data = new Uint8Array(size);
        data[i] = 1;
        const flags = new Uint8Array(1);
        expect(core.zeroBlockFlagsInto(shifted(data, 3), flags), `size ${size} byte ${i}`).toBe(0);
        expect(flags[0]).toBe(0);
      }
      expect(core.zeroBlockFlagsInto(new Uint8Array(size), new Uint8Array(1))).toBe(1);
    }
  });

  it('works across window chunks, and isZero agrees', () => {
    const data = new Uint8Array(core.windowSize * 2 + 5000);
    const flags = new Uint8Array(Math.ceil(data.length / BLOCK_SIZE));
    expect(core.zeroBlockFlagsInto(data, flags)).toBe(flags.length);
    expect(core.isZero(data)).toBe(true);
    data[core.windowSize + 4096 * 3 + 17] = 9;
    expect(core.zeroBlockFlagsInto(data, flags)).toBe(flags.length - 1);
    expect(flags.indexOf(0)).toBe(core.windowSize / 4096 + 3);
    expect(core.isZero(data)).toBe(false);
    expect(core.isZero(new Uint8Array(0))).toBe(true);
    expect(core.isZero(Uint8Array.of(0, 0, 1))).toBe(false);
    expect(core.zeroBlockFlagsInto(new Uint8Array(0), new Uint8Array(0))).toBe(0);
  });
});

describe.each(BUILDS)('firstDigestMismatch (%s build)', (build) => {
  const core = WasmCore.load(build);

  it('returns -1 for equal lists and the index of the first differing digest', () => {
    const a = seededBytes(100 * 32, 8);
    expect(core.firstDigestMismatch(a, a.slice())).toBe(-1);
    expect(core.firstDigestMismatch(new Uint8Array(0), new Uint8Array(0))).toBe(-1);
    for (const [index, byte] of [[0, 0], [0, 31], [57, 16], [99, 31], [99, 0]] as const) {
      const b = shifted(a, 3);
      b[index * 32 + byte]! ^= 0x40;
      b[99 * 32 + 5]! ^= 1; // a later difference must not win
      expect(core.firstDigestMismatch(a, b), `digest ${index} byte ${byte}`).toBe(index);
    }
  });

  it('finds mismatches past the first window chunk', () => {
    const count = 200_000; // 6.4 MB per list: several half-window rounds
    const a = seededBytes(count * 32, 10);
    const b = a.slice();
    b[(count - 2) * 32 + 7]! ^= 1;
    expect(core.firstDigestMismatch(a, b)).toBe(count - 2);
    b[70_000 * 32]! ^= 1;
    expect(core.firstDigestMismatch(a, b)).toBe(70_000);
  });
});
