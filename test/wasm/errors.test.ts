// Bad arguments throw TypeError/RangeError naming the argument.
import { describe, expect, it } from 'vitest';
import { BlockListHasher } from '../../dist/src/wasm/block-list.js';
import { WasmCore, type CoreBuild } from '../../dist/src/wasm/core.js';
import { BUILDS } from './helpers.js';

const bad = <T>(value: unknown): T => value as T;

describe('WasmCore.load', () => {
  it('rejects an unknown build', () => {
    expect(() => WasmCore.load(bad<CoreBuild>('fast'))).toThrow(TypeError);
    expect(() => WasmCore.load(bad<CoreBuild>('fast'))).toThrow(/build/);
  });
});

describe.each(BUILDS)('argument checks (%s build)', (build) => {
  const core = WasmCore.load(build);
  const out = new Uint8Array(64);

  it.each([
    ['hashWindowBlocksInto length < 0', () => core.hashWindowBlocksInto(-1, out), RangeError, /length/],
    ['hashWindowBlocksInto length > window', () => core.hashWindowBlocksInto(core.windowSize + 1, new Uint8Array(1 << 20)), RangeError, /length/],
    ['hashWindowBlocksInto fractional length', () => core.hashWindowBlocksInto(1.5, out), RangeError, /length/],
    ['hashWindowBlocksInto string length', () => core.hashWindowBlocksInto(bad('10'), out), TypeError, /length/],
    ['hashWindowBlocksInto out too small', () => core.hashWindowBlocksInto(3 * 4096, out), RangeError, /out/],
    ['hashWindowBlocksInto out not bytes', () => core.hashWindowBlocksInto(1, bad([])), TypeError, /out/],
    ['hashWindowBlocksInto negative outOffset', () => core.hashWindowBlocksInto(1, out, -1), RangeError, /outOffset/],
    ['blockDigestsInto data not bytes', () => core.blockDigestsInto(bad('abc'), out), TypeError, /data/],
    ['blockDigestsInto data as Uint16Array', () => core.blockDigestsInto(bad(new Uint16Array(4)), out), TypeError, /data/],
    ['blockDigestsInto out too small', () => core.blockDigestsInto(new Uint8Array(4097), new Uint8Array(63)), RangeError, /out/],
    ['blockDigestsInto out too small at offset', () => core.blockDigestsInto(new Uint8Array(10), out, 33), RangeError, /out/],
    ['zeroBlockFlagsInto out too small', () => core.zeroBlockFlagsInto(new Uint8Array(4097), new Uint8Array(1)), RangeError, /out/],
    ['zeroBlockFlagsInto data null', () => core.zeroBlockFlagsInto(bad(null), out), TypeError, /data/],
    ['isZero data undefined', () => core.isZero(bad(undefined)), TypeError, /data/],
    ['firstDigestMismatch lengths differ', () => core.firstDigestMismatch(new Uint8Array(32), new Uint8Array(64)), RangeError, /length/],
    ['firstDigestMismatch not multiple of 32', () => core.firstDigestMismatch(new Uint8Array(31), new Uint8Array(31)), RangeError, /multiple of 32/],
    ['firstDigestMismatch b not bytes', () => core.firstDigestMismatch(out, bad({})), TypeError, /\bb\b/],
    ['Sha256.update data not bytes', () => core.sha256().update(bad('abc')), TypeError, /data/],
    ['Sha256.digestInto out too small', () => core.sha256().digestInto(new Uint8Array(31)), RangeError, /out/],
    ['Sha256.digestInto bad offset', () => core.sha256().digestInto(out, 33), RangeError, /offset/],
    ['BlockListHasher core missing', () => new BlockListHasher(bad({})), TypeError, /core/],
    ['BlockListHasher.update data not bytes', () => new BlockListHasher(core).update(bad(3)), TypeError, /data/],
  ] as const)('%s', (_name, call, type, message) => {
    expect(call).toThrow(type);
    expect(call).toThrow(message);
  });

  it('leaves a hasher usable after a rejected digestInto', () => {
    const h = core.sha256().update(Uint8Array.of(1));
    expect(() => h.digestInto(new Uint8Array(8))).toThrow(RangeError);
    expect(h.digest().length).toBe(32);
  });
});
