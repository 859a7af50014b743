// The SOURCE_DIFF apply kernel (assembly/delta/patch.ts through DeltaCore.patchApply) on hostile
// input: every length and position in a control stream comes from the payload, so malformed
// streams must give a negative code, never a trap or a read outside the buffers. Each result is
// compared with a JavaScript reference (test/helpers/delta.ts): a read past a buffer inside WASM
// memory would not trap, but it would make output the reference does not.
import { describe, expect, it } from 'vitest';
import { encodeControl } from '../../dist/src/format/diff.js';
import { DeltaCore } from '../../dist/src/wasm/delta.js';
import { control, patchApplyRef, randomEdit, varint, xorByte } from '../helpers/delta.js';
import { BUILDS, Prng, randomBytes, textBytes } from '../helpers/payloads.js';

const MUTATIONS_PER_BUILD = 4000;

interface Case {
  src: Uint8Array;
  ctrl: Uint8Array;
  diff: Uint8Array;
  extra: Uint8Array;
  outLen: number;
}

/** Valid encodings of seeded (source, target) pairs: small, with copies, edits and new bytes. */
function validCases(core: DeltaCore, count: number, seed: number): { c: Case; t: Uint8Array }[] {
  const rng = new Prng(seed);
  const out: { c: Case; t: Uint8Array }[] = [];
  while (out.length < count) {
    const src = rng.below(2) === 0 ? textBytes(rng.between(0, 12_000), rng.next32()) : randomBytes(rng.between(0, 12_000), rng.next32());
    let t = src.length > 0 ? src : randomBytes(100, rng.next32());
    for (let i = rng.between(1, 4); i > 0 && t.length > 1; i--) t = randomEdit(t, rng).image;
    t = t.subarray(0, 16_000);
    const enc = core.diffEncode(src, t);
    if (!enc) continue;
    out.push({ c: { src, ctrl: encodeControl(enc.entries), diff: enc.diff, extra: enc.extra, outLen: t.length }, t });
  }
  return out;
}

/** One random mutation of a valid case (a new case; the original is not changed). */
function mutate(base: Case, rng: Prng): { c: Case; what: string } {
  const c = { ...base };
  const bytes = (n: number) => randomBytes(n, rng.next32());
  const cut = (a: Uint8Array) => a.subarray(0, rng.below(a.length + 1));
  const grow = (a: Uint8Array) => new Uint8Array(Buffer.concat([a, bytes(rng.between(1, 12))]));
  const big = () => [0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, rng.next32(), rng.below(20_000)][rng.below(9)]!;
  switch (rng.below(12)) {
    case 0: {
      c.ctrl = base.ctrl.slice();
      for (let i = rng.between(1, 3); i > 0 && c.ctrl.length > 0; i--) xorByte(c.ctrl, rng.below(c.ctrl.length), 1 << rng.below(8));
      return { c, what: 'control bits flipped' };
    }
    case 1: return { c: { ...c, ctrl: cut(base.ctrl) }, what: 'control truncated' };
    case 2: return { c: { ...c, ctrl: grow(base.ctrl) }, what: 'control with bytes appended' };
    case 3: {
      // An entry with an overlong number (>= 2^32, or more than 5 bytes) spliced in.
      const bad = rng.below(2) === 0 ? varint(2 ** 32 + rng.below(2 ** 20)) : varint(rng.below(100), rng.between(5, 7));
      const entry = [[...bad, 0, 0], [0, ...bad, 0], [0, 0, ...bad]][rng.below(3)]!;
      return { c: { ...c, ctrl: Uint8Array.from([...base.ctrl, ...entry]) }, what: 'overlong varint appended' };
    }
    case 4: return { c: { ...c, outLen: Math.max(0, base.outLen + rng.between(-50, 50)) }, what: 'output length changed' };
    case 5: return { c: { ...c, diff: rng.below(2) === 0 ? cut(base.diff) : grow(base.diff) }, what: 'difference stream resized' };
    case 6: return { c: { ...c, extra: rng.below(2) === 0 ? cut(base.extra) : grow(base.extra) }, what: 'extra stream resized' };
    case 7: return { c: { ...c, src: cut(base.src) }, what: 'source shortened' };
    case 8: return { c: { ...c, ctrl: bytes(rng.below(40)) }, what: 'random control bytes' };
    case 9: {
      const entries = Array.from({ length: rng.between(1, 4) }, () => [big(), big(), (rng.below(2) ? 1 : -1) * big()] as const);
      return { c: { ...c, ctrl: control(entries) }, what: 'entries with extreme numbers' };
    }
    case 10: {
      // Plausible entries: small numbers near the real lengths.
      const entries = Array.from({ length: rng.between(1, 6) }, () => [rng.below(base.outLen + 2), rng.below(base.extra.length + 2), rng.between(-base.src.length - 2, base.src.length + 2)] as const);
      return { c: { ...c, ctrl: control(entries) }, what: 'plausible random entries' };
    }
    default: return { c: { ...c, ctrl: base.ctrl.subarray(0, Math.max(0, base.ctrl.length - rng.between(1, 3))) }, what: 'last entry cut short' };
  }
}

function run(core: DeltaCore, c: Case): Uint8Array | number {
  return core.patchApply(c.src, c.ctrl, c.diff, c.extra, c.outLen);
}

describe.each(BUILDS)('%s build', (build) => {
  it('valid encodings from diffEncode + encodeControl rebuild the target exactly', () => {
    const core = new DeltaCore(build);
    for (const { c, t } of validCases(core, 60, 1)) {
      const got = run(core, c);
      expect(got).toBeInstanceOf(Uint8Array);
      expect(Buffer.compare(got as Uint8Array, t)).toBe(0);
      expect(Buffer.compare(patchApplyRef(c.src, c.ctrl, c.diff, c.extra, c.outLen) as Uint8Array, t)).toBe(0);
    }
  });

  it.each([
    ['empty everything', { ctrl: [], outLen: 0 }, 0],
    ['no entries but an output to fill', { ctrl: [], outLen: 1 }, -5],
    ['a truncated varint', { ctrl: [0x80] }, -1],
    ['an entry missing its third number', { ctrl: [1, 0] }, -1],
    ['a varint of 2^32', { ctrl: [...varint(2 ** 32), 0, 0] }, -1],
    ['a varint of 2^35 - 1 (5 bytes, top bits set)', { ctrl: [0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0] }, -1],
    ['a 6-byte varint of 0', { ctrl: [...varint(0, 5), 0, 0] }, -1],
    ['2^32 - 1 source bytes', { ctrl: [...varint(0xffffffff), 0, 0] }, -2],
    ['one byte past the source', { ctrl: [...varint(5), 0, ...varint(0)], src: 4, diff: 5, outLen: 5 }, -2],
    ['a source position before 0', { ctrl: [1, 0, 1], diff: 1, outLen: 1 }, -2],
    ['a distance of -2^31 after a copy', { ctrl: [2, 0, 0, 1, 0, ...varint(0xffffffff)], diff: 3, outLen: 3 }, -2],
    ['more output than the operation has', { ctrl: [0, 5, 0], extra: 5, outLen: 4 }, -3],
    ['2^32 - 1 extra bytes', { ctrl: [0, ...varint(0xffffffff), 0], extra: 5, outLen: 5 }, -3],
    ['more difference bytes than the stream holds', { ctrl: [4, 0, 0], diff: 3, outLen: 4 }, -4],
    ['more extra bytes than the stream holds', { ctrl: [0, 4, 0], extra: 3, outLen: 4 }, -4],
    ['difference bytes left over', { ctrl: [2, 0, 0], diff: 3, outLen: 2 }, -5],
    ['extra bytes left over', { ctrl: [0, 2, 0], extra: 3, outLen: 2 }, -5],
    ['output left short', { ctrl: [0, 2, 0], extra: 2, outLen: 3 }, -5],
  ])('%s: %i', (_name, spec: { ctrl: number[]; src?: number; diff?: number; extra?: number; outLen?: number }, code) => {
    const core = new DeltaCore(build);
    const c: Case = {
      src: randomBytes(spec.src ?? 64, 2),
      ctrl: Uint8Array.from(spec.ctrl),
      diff: randomBytes(spec.diff ?? 0, 3),
      extra: randomBytes(spec.extra ?? 0, 4),
      outLen: spec.outLen ?? 0,
    };
    const got = run(core, c);
    if (code === 0) expect(got).toEqual(new Uint8Array(0));
    else expect(got).toBe(code);
    expect(patchApplyRef(c.src, c.ctrl, c.diff, c.extra, c.outLen)).toEqual(got);
  });

  it(`${MUTATIONS_PER_BUILD} mutated control streams and lengths: a negative code or the reference's output, never a trap`, () => {
    const core = new DeltaCore(build);
    const valid = validCases(core, 40, 5);
    const rng = new Prng(build === 'release' ? 11 : 12);
    const outcomes = new Map<string, number>();
    const failures: string[] = [];
    for (let i = 0; i < MUTATIONS_PER_BUILD; i++) {
      const { c, what } = mutate(valid[rng.below(valid.length)]!.c, rng);
      let got: Uint8Array | number;
      try {
        got = run(core, c);
      } catch (err) {
        failures.push(`#${i} ${what}: threw ${String(err)}`);
        continue;
      }
      const want = patchApplyRef(c.src, c.ctrl, c.diff, c.extra, c.outLen);
      const key = typeof got === 'number' ? String(got) : 'output';
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      if (typeof got === 'number' ? got !== want : !(want instanceof Uint8Array) || got.length !== c.outLen || Buffer.compare(got, want) !== 0) {
        failures.push(`#${i} ${what}: kernel ${typeof got === 'number' ? got : `${got.length} bytes`}, reference ${typeof want === 'number' ? want : `${want.length} bytes`}`);
      }
    }
    expect(failures.slice(0, 10)).toEqual([]);
    // The fuzz reached every refusal and some valid outputs.
    expect([...outcomes.keys()].sort()).toEqual(['-1', '-2', '-3', '-4', '-5', 'output']);
    // The module still works after all that.
    for (const { c, t } of valid.slice(0, 5)) expect(Buffer.compare(run(core, c) as Uint8Array, t)).toBe(0);
  });
});
