// Streaming SHA-256 of the WASM core: NIST vectors, node:crypto cross-checks, split points.
import { describe, expect, it } from 'vitest';
import { WasmCore } from '../../dist/src/wasm/core.js';
import { BUILDS, hex, seededBytes, seededInts, sha256Ref, shifted } from './helpers.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

// FIPS 180-2 appendix B / NIST CSRC example values.
const NIST: [string, Uint8Array, string][] = [
  ['empty', ascii(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ['abc', ascii('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ['448 bits', ascii('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
  ['896 bits', ascii('abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu'),
    'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1'],
];
const MILLION_A = 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0';

describe.each(BUILDS)('Sha256 (%s build)', (build) => {
  const core = WasmCore.load(build);

  it.each(NIST)('NIST vector: %s', (_name, message, expected) => {
    expect(hex(core.sha256().update(message).digest())).toBe(expected);
  });

  it('NIST vector: one million "a", in one call and in 1000-byte pieces', () => {
    const data = new Uint8Array(1_000_000).fill(0x61);
    expect(hex(core.sha256().update(data).digest())).toBe(MILLION_A);
    const h = core.sha256();
    for (let pos = 0; pos < data.length; pos += 1000) h.update(data.subarray(pos, pos + 1000));
    expect(hex(h.digest())).toBe(MILLION_A);
  });

  it.each([0, 1, 55, 56, 63, 64, 65, 119, 120, 4095, 4096, 4097, 4 * 4096, 5 * 4096 + 7, 9 * 1024 * 1024 + 123])(
    'random data of %i bytes matches node:crypto', (size) => {
      const data = seededBytes(size, size);
      expect(hex(core.sha256().update(data).digest())).toBe(hex(sha256Ref(data)));
    });

  it('every two-piece split of a 300-byte input gives the one-shot digest, at any byteOffset', () => {
    const data = seededBytes(300, 1);
    const expected = hex(sha256Ref(data));
    for (const shift of [0, 1, 3, 7]) {
      const input = shifted(data, shift);
      for (let cut = 0; cut <= input.length; cut++) {
        const h = core.sha256().update(input.subarray(0, cut)).update(input.subarray(cut));
        expect(hex(h.digest()), `shift ${shift} cut ${cut}`).toBe(expected);
      }
    }
  });

  it('random multi-piece splits of larger inputs give the one-shot digest, at any byteOffset', () => {
    const next = seededInts(42);
    for (const size of [70_000, 5 * 1024 * 1024 + 17]) {
      const data = seededBytes(size, size);
      const expected = hex(sha256Ref(data));
      for (const shift of [0, 5]) {
        const input = shifted(data, shift);
        for (let trial = 0; trial < 4; trial++) {
          const h = core.sha256();
          let pos = 0;
          while (pos < input.length) {
            // Mostly small pieces, sometimes large ones, so chunk and window edges both get hit.
            const n = next(4) === 0 ? next(2 * 1024 * 1024) : next(200);
            h.update(input.subarray(pos, pos + n));
            pos += n;
          }
          expect(hex(h.digest()), `size ${size} shift ${shift} trial ${trial}`).toBe(expected);
        }
      }
    }
  });

  it('interleaved hashers keep separate states', () => {
    const a = seededBytes(10_000, 2);
    const b = seededBytes(9_999, 3);
    const ha = core.sha256();
    const hb = core.sha256();
    for (let pos = 0; pos < 10_000; pos += 333) {
      ha.update(a.subarray(pos, pos + 333));
      hb.update(b.subarray(pos, pos + 333));
    }
    expect(hex(hb.digest())).toBe(hex(sha256Ref(b)));
    expect(hex(ha.digest())).toBe(hex(sha256Ref(a)));
  });

  it('keeps a stream intact across per-block hashing, zero checks and other hashers', () => {
    const data = seededBytes(50_000, 11);
    const h = core.sha256().update(data.subarray(0, 20_000));
    core.blockDigestsInto(seededBytes(5 * 4096 + 1, 12), new Uint8Array(6 * 32));
    core.isZero(new Uint8Array(100_000));
    core.sha256().update(seededBytes(777, 13)).digest();
    h.update(data.subarray(20_000));
    expect(hex(h.digest())).toBe(hex(sha256Ref(data)));
  });

  it('hashes data that already lies in the window, in place', () => {
    const data = seededBytes(100_000, 4);
    const win = core.window();
    win.set(data, 12345);
    const view = win.subarray(12345, 12345 + data.length);
    expect(hex(core.sha256().update(view).digest())).toBe(hex(sha256Ref(data)));
  });

  it('digestInto writes at an offset; reset starts over; finished hashers refuse more work', () => {
    const h = core.sha256().update(ascii('ab'));
    const out = new Uint8Array(40).fill(7);
    h.digestInto(out, 8);
    expect(hex(out.subarray(8))).toBe(hex(sha256Ref(ascii('ab'))));
    expect(out.subarray(0, 8)).toEqual(new Uint8Array(8).fill(7));
    expect(() => h.update(ascii('c'))).toThrow(Error);
    expect(() => h.digest()).toThrow(Error);
    expect(hex(h.reset().update(ascii('abc')).digest())).toBe(NIST[1]![2]);
    // reset() in the middle of a message drops what was absorbed.
    const m = core.sha256().update(ascii('garbage')).reset().update(ascii('abc'));
    expect(hex(m.digest())).toBe(NIST[1]![2]);
  });
});
