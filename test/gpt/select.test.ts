import { describe, expect, it } from 'vitest';
import * as attrs from '../../dist/src/gpt/attributes.js';
import { markGood, prioritize, setNext } from '../../dist/src/gpt/prioritize.js';
import { grubBoot, grubNext, vbootNext, type BootDecision } from '../../dist/src/gpt/boot-model.js';
import { codeOf } from '../helpers/errors.js';
import { rng } from '../helpers/rng.js';
import { CGPT_PRIORITIZE_VECTORS } from '../helpers/cgpt-vectors.js';

type SlotEntry = attrs.SlotEntry;
const { CHROMEOS_KERNEL_TYPE: KERNEL, CHROMEOS_ROOTFS_TYPE: ROOTFS, FLATCAR_USR_TYPE: USR, FLATCAR_ROOT_TYPE: ROOT } = attrs;

/** Attributes with P, T, S (and any other bits in `extra`). */
const bits = (p: number, t: number, s: number, extra = 0n): bigint => attrs.setSlotBits(extra, { priority: p, tries: t, successful: s === 1 });
const entry = (index: number, p: number, t: number, s: number, typeGuid = USR, extra = 0n): SlotEntry => ({ index, typeGuid, attributes: bits(p, t, s, extra) });
const pts = (e: SlotEntry | undefined): [number, number, number] => {
  const b = attrs.getSlotBits(e!.attributes);
  return [b.priority, b.tries, b.successful ? 1 : 0];
};
const at = (entries: SlotEntry[], index: number) => entries.find((e) => e.index === index);
const priorities = (entries: SlotEntry[]) => entries.map((e) => attrs.getPriority(e.attributes));
/** Five ChromeOS kernels numbered 1..5 with the given priorities (T0 S1, so all are eligible). */
const kernels = (ps: number[]) => ps.map((p, i) => entry(i + 1, p, 0, 1, KERNEL));
const chosen = (d: BootDecision) => (d.bootable ? d.index : undefined);


describe('attribute bits (notes §1.1)', () => {
  it('reads the layout checked with xxd and cgpt show -A', () => {
    // P2 T6 S0: bytes 00 00 00 00 00 00 62 00 (little-endian), i.e. 0x0062000000000000.
    expect(bits(2, 6, 0)).toBe(0x0062_0000_0000_0000n);
    expect(attrs.getSlotBits(0x0102_0000_0000_0000n)).toEqual({ priority: 2, tries: 0, successful: true });
    expect(attrs.getSlotBits(0x0101_0000_0000_0000n)).toEqual({ priority: 1, tries: 0, successful: true });
    // partx FLAGS after `cgpt add -R 1 -B 1` on P2 T0 S1.
    expect(attrs.getField(0x102_0000_0000_0005n, 'required')).toBe(1);
    expect(attrs.getField(0x102_0000_0000_0005n, 'noBlockIo')).toBe(0);
    expect(attrs.getField(0x102_0000_0000_0005n, 'legacyBoot')).toBe(1);
    expect(attrs.getField(1n << 57n, 'errorCounter')).toBe(1);
    expect(attrs.getField(1n << 60n, 'readOnly')).toBe(1);
    expect(attrs.getField(1n << 62n, 'hidden')).toBe(1);
    expect(attrs.getField(1n << 63n, 'noAutomount')).toBe(1);
    expect(attrs.formatSlotBits(bits(15, 15, 1))).toBe('P15 T15 S1');
  });

  it('rejects out-of-range values (cgpt: "value for -P must be between 0 and 15")', () => {
    expect(attrs.setPriority(0n, 15)).toBe(0xfn << 48n);
    expect(attrs.setTries(0n, 15)).toBe(0xfn << 52n);
    expect(() => attrs.setPriority(0n, 16)).toThrow(RangeError);
    expect(() => attrs.setTries(0n, 16)).toThrow(RangeError);
    expect(() => attrs.setPriority(0n, -1)).toThrow(RangeError);
    expect(() => attrs.setTries(0n, 1.5)).toThrow(RangeError);
    expect(() => attrs.setField(0n, 'required', 2)).toThrow(RangeError);
    expect(() => attrs.getPriority(1n << 64n)).toThrow(RangeError);
    expect(() => attrs.getPriority(-1n)).toThrow(RangeError);
    expect(() => attrs.getPriority(1 as unknown as bigint)).toThrow(TypeError);
  });

  it('every setter keeps every bit it does not name (edge case 8)', () => {
    const r = rng(8);
    for (let n = 0; n < 500; n++) {
      const a = r.u64();
      const p = r.int(0, 15), t = r.int(0, 15), s = r.bool();
      const b = attrs.setSlotBits(a, { priority: p, tries: t, successful: s });
      expect(b & ~attrs.SLOT_BITS_MASK).toBe(a & ~attrs.SLOT_BITS_MASK);
      expect(attrs.getSlotBits(b)).toEqual({ priority: p, tries: t, successful: s });
      for (const [field, { shift, width }] of Object.entries(attrs.ATTRIBUTE_FIELDS)) {
        const v = r.int(0, 2 ** width - 1);
        const c = attrs.setField(a, field as attrs.AttributeField, v);
        const mask = ((1n << BigInt(width)) - 1n) << BigInt(shift);
        expect(c & ~mask).toBe(a & ~mask);
        expect(attrs.getField(c, field as attrs.AttributeField)).toBe(v);
      }
    }
  });

  it('bootable means P > 0 and (T > 0 or S = 1) (edge cases 2, 3)', () => {
    expect(attrs.isBootable(bits(1, 0, 1))).toBe(true);
    expect(attrs.isBootable(bits(1, 1, 0))).toBe(true);
    expect(attrs.isBootable(bits(0, 0, 1))).toBe(false);
    expect(attrs.isBootable(bits(0, 5, 0))).toBe(false);
    expect(attrs.isBootable(bits(15, 0, 0))).toBe(false);
  });
});

describe('cgpt prioritize renumbering (notes §2.4, all checked vectors)', () => {
  const cases = CGPT_PRIORITIZE_VECTORS;
  it.each(cases)('%j -i %s %j -> %j', (before, i, opts, after) => {
    const out = prioritize(kernels(before), i, { typeGuid: KERNEL, ...opts });
    expect(priorities(out)).toEqual(after);
    // Tries and successful never change.
    expect(out.map((e) => pts(e).slice(1))).toEqual(before.map(() => [0, 1]));
  });

  it('with two slots, -i X gives X = 2 and the other 1, or leaves the other at 0', () => {
    for (let a = 0; a <= 15; a++) {
      for (let b = 0; b <= 15; b++) {
        const out = prioritize([entry(3, a, 0, 1), entry(4, b, 0, 0)], 4);
        expect(priorities(out)).toEqual([a === 0 ? 0 : 1, a === 0 ? 1 : 2]);
      }
    }
  });

  it('takes the Flatcar /usr type by default and ignores other types (edge case 9)', () => {
    const table = [entry(1, 5, 3, 1, ROOT), entry(3, 1, 0, 1), entry(4, 0, 0, 0), entry(6, 7, 7, 1, KERNEL), entry(9, 2, 0, 1, ROOTFS)];
    const out = prioritize(table, 4);
    expect(out.map(pts)).toEqual([[5, 3, 1], [1, 0, 1], [2, 0, 0], [7, 7, 1], [2, 0, 1]]);
    expect(prioritize(table, 6, { typeGuid: KERNEL.toLowerCase() }).map(pts)[3]).toEqual([1, 7, 1]);
    expect(out).not.toBe(table);
    expect(table.map(pts)[2]).toEqual([0, 0, 0]); // the input is not modified
  });

  it('target at P = 0 becomes top; other zeros stay 0 (edge case 11)', () => {
    expect(priorities(prioritize([entry(2, 0, 0, 0), entry(3, 0, 1, 0), entry(4, 0, 0, 1), entry(5, 3, 0, 1)], 4))).toEqual([0, 0, 2, 1]);
  });

  it('refuses what cgpt refuses', () => {
    const table = [entry(1, 1, 0, 0, ROOT), entry(3, 1, 0, 1), entry(4, 0, 0, 0)];
    expect(() => prioritize(table, 1)).toThrow(/partition 1 is not a slot/);
    expect(codeOf(() => prioritize(table, 7))).toBe('USAGE'); // not a slot: the user named it
    expect(() => prioritize(table, undefined, { friends: true })).toThrow(TypeError);
    expect(() => prioritize(table, 3, { maxPriority: 0 })).toThrow(RangeError);
    expect(() => prioritize(table, 3, { maxPriority: 16 })).toThrow(RangeError);
    expect(() => prioritize([entry(3, 1, 0, 1), entry(3, 0, 0, 0)], 3)).toThrow(/twice/);
    expect(() => prioritize([entry(0, 1, 0, 1)])).toThrow(RangeError);
  });

  it('property: never touches non-slot entries or bits outside priority; keeps the order (edge cases 8-10)', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const r = rng(seed);
      const n = r.int(1, 20);
      const indices = [...new Set(Array.from({ length: n }, () => r.int(1, 128)))];
      const table: SlotEntry[] = indices.map((index) => ({ index, typeGuid: [USR, USR, ROOT, KERNEL][r.int(0, 3)]!, attributes: r.u64() }));
      const slots = table.filter((e) => e.typeGuid === USR);
      const pick = slots.length > 0 && r.bool() ? slots[r.int(0, slots.length - 1)]!.index : undefined;
      const opts = { friends: pick !== undefined && r.bool(), ...(r.bool() ? { maxPriority: r.int(1, 15) } : {}) };
      const out = prioritize(table, pick, opts);
      const msg = `seed ${seed}`;
      expect(out.map((e) => e.index), msg).toEqual(table.map((e) => e.index));
      for (const [k, e] of table.entries()) {
        const o = out[k]!;
        const pMask = 0xfn << 48n;
        if (e.typeGuid !== USR) expect(o.attributes, msg).toBe(e.attributes);
        else expect(o.attributes & ~pMask, msg).toBe(e.attributes & ~pMask);
      }
      // Order among slots is kept (never reversed), zeros stay zero unless chosen, nothing goes to 0.
      const before = (x: SlotEntry) => attrs.getPriority(x.attributes);
      const after = (x: SlotEntry) => attrs.getPriority(at(out, x.index)!.attributes);
      const top = pick === undefined ? undefined : at(table, pick)!;
      const isTop = (x: SlotEntry) => x === top || (opts.friends && before(x) === before(top!));
      for (const a of slots) {
        if (isTop(a)) {
          for (const b of slots) expect(after(a), msg).toBeGreaterThanOrEqual(after(b));
          expect(after(a), msg).toBeGreaterThan(0);
          continue;
        }
        expect(after(a) === 0, msg).toBe(before(a) === 0);
        for (const b of slots) if (!isTop(b) && before(a) > before(b)) expect(after(a), msg).toBeGreaterThanOrEqual(after(b));
      }
    }
  });
});

describe('GRUB gptprio.next (notes §2.1, tests/gptprio_test.in)', () => {
  it('reproduces the conformance sequence', () => {
    let table = [entry(2, 3, 3, 0), entry(3, 2, 2, 0), entry(4, 1, 0, 1)];
    const expected: Array<[number, Array<[number, number, number]>, boolean]> = [
      [2, [[3, 2, 0], [2, 2, 0], [1, 0, 1]], true],
      [2, [[3, 1, 0], [2, 2, 0], [1, 0, 1]], true],
      [2, [[3, 0, 0], [2, 2, 0], [1, 0, 1]], true],
      [3, [[3, 0, 0], [2, 1, 0], [1, 0, 1]], true],
      [3, [[3, 0, 0], [2, 0, 0], [1, 0, 1]], true],
      [4, [[3, 0, 0], [2, 0, 0], [1, 0, 1]], false],
      [4, [[3, 0, 0], [2, 0, 0], [1, 0, 1]], false],
      [4, [[3, 0, 0], [2, 0, 0], [1, 0, 1]], false],
    ];
    for (const [call, [index, state, written]] of expected.entries()) {
      const d = grubNext(table);
      expect(chosen(d), `call ${call + 1}`).toBe(index);
      expect(d.written, `call ${call + 1}`).toBe(written);
      expect(d.entries.map(pts), `call ${call + 1}`).toEqual(state);
      table = d.entries;
    }
  });

  it('corruption vectors: P1 T0 S1 is chosen without a write; P1 T1 S0 is chosen and written', () => {
    const a = grubNext([entry(2, 1, 0, 1)]);
    expect([chosen(a), a.written]).toEqual([2, false]);
    const b = grubNext([entry(2, 1, 1, 0)]);
    expect([chosen(b), b.written, pts(b.entries[0])]).toEqual([2, true, [1, 0, 0]]);
  });

  it('reports the unique GUID in lowercase, and fails with "no such partition"', () => {
    const d = grubNext([{ index: 4, typeGuid: USR.toLowerCase(), uniqueGuid: 'E03DD35C-7C2D-4A47-B3FE-27F15780A57C', attributes: bits(1, 0, 1) }]);
    expect(d.bootable && d.uniqueGuid).toBe('e03dd35c-7c2d-4a47-b3fe-27f15780a57c');
    const none = grubNext([entry(3, 0, 0, 1), entry(4, 5, 0, 0), entry(6, 9, 9, 1, ROOT)]);
    expect(none).toMatchObject({ bootable: false, reason: 'no such partition', written: false });
    expect(grubNext([])).toMatchObject({ bootable: false });
  });

  it('scans in partition order whatever the array order', () => {
    expect(chosen(grubNext([entry(4, 2, 0, 1), entry(3, 2, 0, 1)]))).toBe(3);
  });
});

describe('vboot GptNextKernelEntry + GptUpdateKernelEntry (notes §2.2)', () => {
  it('boots the highest priority; S = 1 is never changed; tries count down; the last try zeroes P', () => {
    const good = vbootNext([entry(2, 2, 0, 1, KERNEL), entry(4, 1, 0, 0, KERNEL)]);
    expect([chosen(good), good.written]).toEqual([2, false]);
    let table = [entry(2, 1, 0, 1, KERNEL), entry(4, 2, 6, 0, KERNEL)];
    for (let boot = 1; boot <= 6; boot++) {
      const d = vbootNext(table);
      expect(chosen(d), `boot ${boot}`).toBe(4);
      expect(pts(at(d.entries, 4)), `boot ${boot}`).toEqual(boot < 6 ? [2, 6 - boot, 0] : [0, 0, 0]);
      expect(d.written).toBe(true);
      table = d.entries;
    }
    expect(chosen(vbootNext(table))).toBe(2); // T=6 allowed exactly 6 boots
  });

  it('on load failure marks BAD (unless S = 1) and tries the next same-priority entry at a higher index, then lower priorities', () => {
    const table = [entry(2, 3, 0, 1, KERNEL), entry(4, 3, 2, 0, KERNEL), entry(6, 5, 4, 0, KERNEL), entry(8, 1, 0, 1, KERNEL)];
    const d = vbootNext(table, { canLoad: (i) => i === 8 });
    expect(d.failed).toEqual([6, 2, 4]);
    expect([chosen(d), d.written]).toEqual([8, true]);
    expect(d.entries.map(pts)).toEqual([[3, 0, 1], [0, 0, 0], [0, 0, 0], [1, 0, 1]]);
    const none = vbootNext(table, { canLoad: () => false });
    expect(none).toMatchObject({ bootable: false, reason: 'no valid kernel', failed: [6, 2, 4, 8] });
  });

  it('NOFAIL_BOOT leaves the try; other types are ignored; vbmeta is opt-in', () => {
    const d = vbootNext([entry(4, 2, 1, 0, KERNEL)], { noFailBoot: true });
    expect([chosen(d), d.written, pts(d.entries[0])]).toEqual([4, false, [2, 1, 0]]);
    expect(vbootNext([entry(3, 9, 9, 1, ROOTFS), entry(5, 9, 9, 1, USR)]).bootable).toBe(false);
    const vbmeta = entry(5, 2, 0, 1, attrs.ANDROID_VBMETA_TYPE);
    expect(vbootNext([vbmeta]).bootable).toBe(false);
    expect(chosen(vbootNext([vbmeta], { typeGuids: [KERNEL, attrs.ANDROID_VBMETA_TYPE] }))).toBe(5);
  });
});

describe('GRUB vs vboot: the differences of notes §2.3 and edge cases 1-5', () => {
  const both = (table: SlotEntry[]) => [grubNext(table, KERNEL), vbootNext(table)] as const;

  it('tie on priority: both choose the lower index (edge case 1)', () => {
    for (const d of both([entry(2, 2, 0, 1, KERNEL), entry(4, 2, 0, 1, KERNEL)])) expect(chosen(d)).toBe(2);
  });

  it('P0 never boots; P>0 T0 S0 is skipped and keeps its priority (edge cases 2, 3)', () => {
    for (const d of both([entry(2, 0, 5, 1, KERNEL), entry(3, 9, 0, 0, KERNEL), entry(4, 1, 0, 1, KERNEL)])) {
      expect(chosen(d)).toBe(4);
      expect(pts(at(d.entries, 3))).toEqual([9, 0, 0]);
    }
  });

  it('S = 1 and T > 0: GRUB decrements, vboot does not (edge case 4)', () => {
    const [g, v] = both([entry(2, 2, 3, 1, KERNEL)]);
    expect([pts(g.entries[0]), g.written]).toEqual([[2, 2, 1], true]);
    expect([pts(v.entries[0]), v.written]).toEqual([[2, 3, 1], false]);
  });

  it('last try: GRUB keeps P, vboot zeroes it, both boot it (edge case 5)', () => {
    const [g, v] = both([entry(2, 2, 1, 0, KERNEL), entry(4, 1, 0, 1, KERNEL)]);
    expect([chosen(g), pts(g.entries[0])]).toEqual([2, [2, 0, 0]]);
    expect([chosen(v), pts(v.entries[0])]).toEqual([2, [0, 0, 0]]);
  });

  it('failure inside the bootloader: GRUB fallback re-runs gptprio (using tries), vboot marks BAD', () => {
    const table = [entry(3, 1, 0, 1), entry(4, 2, 3, 0)];
    const g = grubBoot(table, { canLoad: (i) => i === 3 });
    // Runs 1-3 pick USR-B (tries 3 -> 0), run 4 falls back to USR-A.
    expect([chosen(g), g.failed, g.written, pts(at(g.entries, 4))]).toEqual([3, [4, 4, 4], true, [2, 0, 0]]);
    const stuck = grubBoot([entry(3, 1, 0, 1)], { canLoad: () => false });
    expect(stuck).toMatchObject({ bootable: false, reason: 'boot failed', failed: [3, 3, 3, 3], written: false });
    expect(grubBoot(table, { canLoad: () => false, fallbackRuns: 0 })).toMatchObject({ bootable: false, failed: [4] });
    const k = table.map((e) => ({ ...e, typeGuid: KERNEL }));
    const v = vbootNext(k, { canLoad: (i) => i === 3 });
    expect([chosen(v), v.failed, pts(at(v.entries, 4))]).toEqual([3, [4], [0, 0, 0]]);
  });

  it('nothing changes: GRUB writes nothing, vboot writes nothing', () => {
    for (const d of both([entry(2, 1, 0, 1, KERNEL)])) expect(d.written).toBe(false);
  });

  it('property: on a first boot where everything loads, both pick the same partition', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed * 7919);
      const table = Array.from({ length: r.int(0, 8) }, (_, k) => ({ index: k * 2 + r.int(1, 2), typeGuid: r.int(0, 4) === 0 ? ROOTFS : KERNEL, attributes: r.u64() }));
      const [g, v] = both(table);
      expect(chosen(g), `seed ${seed}`).toBe(chosen(v));
    }
  });
});

describe('Flatcar and ChromeOS flows (notes §3.1, §3.2, §6.1)', () => {
  it('walks the Flatcar example table', () => {
    const A = 3, B = 4;
    let t = [entry(1, 0, 0, 0, attrs.FLATCAR_ROOT_TYPE), entry(A, 2, 0, 1), entry(B, 1, 0, 1), entry(9, 0, 0, 0, ROOT)];
    t = setNext(t, B);
    expect([pts(at(t, A)), pts(at(t, B))]).toEqual([[1, 0, 1], [2, 1, 0]]);
    const boot = grubNext(t);
    expect([chosen(boot), pts(at(boot.entries, B)), boot.written]).toEqual([B, [2, 0, 0], true]);
    const good = markGood(boot.entries, B);
    expect([pts(at(good, A)), pts(at(good, B))]).toEqual([[1, 0, 1], [2, 0, 1]]);
    // B died instead: GRUB skips it, boots A without a write; setgoodroot on A.
    const fallback = grubNext(boot.entries);
    expect([chosen(fallback), fallback.written]).toEqual([A, false]);
    const back = markGood(fallback.entries, A);
    expect([pts(at(back, A)), pts(at(back, B))]).toEqual([[2, 0, 1], [1, 0, 0]]);
    // Manual rollback from a healthy B.
    const rolled = prioritize(good, A);
    expect([pts(at(rolled, A)), pts(at(rolled, B))]).toEqual([[2, 0, 1], [1, 0, 1]]);
  });

  it('fresh image: USR-A P1 T0 S1, USR-B P0 T0 S0; set-next B then mark-good', () => {
    const t = setNext([entry(3, 1, 0, 1), entry(4, 0, 0, 0)], 4);
    expect(t.map(pts)).toEqual([[1, 0, 1], [2, 1, 0]]);
    expect(markGood(t, 4).map(pts)).toEqual([[1, 0, 1], [2, 0, 1]]);
  });

  it('ChromeOS: MarkSlotUnbootable + SetActiveBootSlot (T=6), setgoodkernel, rollback (cgpt-checked)', () => {
    const k = { typeGuid: KERNEL };
    let t = [entry(1, 0, 0, 0, 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7'), entry(2, 2, 0, 1, KERNEL), entry(3, 0, 0, 0, ROOTFS), entry(4, 1, 0, 0, KERNEL), entry(5, 0, 0, 0, ROOTFS)];
    t = setNext(t, 4, { ...k, tries: 6 });
    expect([pts(at(t, 2)), pts(at(t, 4))]).toEqual([[1, 0, 1], [2, 6, 0]]);
    t = markGood(t, 4, k);
    expect([pts(at(t, 2)), pts(at(t, 4))]).toEqual([[1, 0, 1], [2, 0, 1]]);
    t = prioritize(t, 2, k);
    expect([pts(at(t, 2)), pts(at(t, 4))]).toEqual([[2, 0, 1], [1, 0, 1]]);
  });

  it('mark-good and set-next are idempotent on the bits (edge case 30)', () => {
    const t = markGood([entry(3, 2, 0, 1), entry(4, 1, 0, 1)], 3);
    expect(markGood(t, 3)).toEqual(t);
    expect(t.map(pts)).toEqual([[2, 0, 1], [1, 0, 1]]);
  });

  it('refuse bad arguments', () => {
    const t = [entry(3, 2, 0, 1), entry(4, 1, 0, 1), entry(9, 0, 0, 0, ROOT)];
    expect(codeOf(() => setNext(t, 9))).toBe('USAGE');
    expect(codeOf(() => markGood(t, 5))).toBe('USAGE');
    expect(() => setNext(t, 4, { tries: 0 })).toThrow(RangeError);
    expect(() => setNext(t, 4, { tries: 16 })).toThrow(RangeError);
  });

  type Model = 'grub' | 'vboot';
  const boot = (model: Model, t: SlotEntry[], type: string) => (model === 'grub' ? grubNext(t, type) : vbootNext(t, { typeGuids: [type] }));

  it.each(['grub', 'vboot'] as Model[])('property (%s): set-next boots the new slot `tries` times, then falls back; mark-good sticks', (model) => {
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed * 104729 + (model === 'grub' ? 1 : 2));
      const type = model === 'grub' ? USR : KERNEL;
      const msg = `${model} seed ${seed}`;
      const A = r.int(1, 10), B = A + r.int(1, 10);
      // Old slot A is good; new slot B in any state; other-type entries and every other bit random.
      const keep = () => r.u64() & ~attrs.SLOT_BITS_MASK;
      const others: SlotEntry[] = Array.from({ length: r.int(0, 4) }, (_, k) => ({ index: 30 + k, typeGuid: r.bool() ? ROOT : ROOTFS, attributes: r.u64() }));
      const start: SlotEntry[] = [
        { index: A, typeGuid: type, attributes: bits(r.int(1, 15), model === 'grub' ? 0 : r.int(0, 15), 1, keep()) },
        { index: B, typeGuid: type, attributes: bits(r.int(0, 15), r.int(0, 15), r.int(0, 1), keep()) },
        ...others,
      ];
      const tries = r.bool() ? 1 : r.int(1, 15);
      const next = setNext(start, B, { typeGuid: type, tries });
      const untouched = (t: SlotEntry[]) => {
        for (const o of others) expect(at(t, o.index), msg).toEqual(o);
        for (const s of [A, B]) expect(at(t, s)!.attributes & ~attrs.SLOT_BITS_MASK, msg).toBe(at(start, s)!.attributes & ~attrs.SLOT_BITS_MASK);
      };
      untouched(next);
      // Every boot until the tries run out picks B; then A, without the failed slot ever being marked good.
      let t = next;
      for (let k = 0; k < tries; k++) {
        const d = boot(model, t, type);
        expect(chosen(d), `${msg} boot ${k + 1}`).toBe(B);
        t = d.entries;
      }
      for (let k = 0; k < 3; k++) {
        const d = boot(model, t, type);
        expect(chosen(d), `${msg} fallback ${k + 1}`).toBe(A);
        t = d.entries;
      }
      untouched(t);
      // Mark-good after the first boot of B makes it stick.
      const first = boot(model, next, type);
      let good = markGood(first.entries, B, { typeGuid: type });
      for (let k = 0; k < 5; k++) {
        const d = boot(model, good, type);
        expect([chosen(d), d.written], `${msg} after mark-good ${k + 1}`).toEqual([B, false]);
        good = d.entries;
      }
      untouched(good);
      // And rolling back to A by hand works, because A is still good.
      expect(chosen(boot(model, prioritize(good, A, { typeGuid: type }), type)), msg).toBe(A);
    }
  });
});
