// The edge cases of gpt-ab-switching.md §7, one `describe` per case, numbered as there. Each case
// asserts something that can fail; where another file already covers the main point, the test here
// adds a different angle and names the existing test. Peers (cgpt, sgdisk, sfdisk, losetup) are the
// Debian tools of notes §6; images live in a temp dir, loop devices are always detached.
// Cases 18 (an I/O error while writing the backup) and 31 (a concurrent writer, the lock) are in
// test/gpt/locking.test.ts, which runs the disk transaction against a failing device and flock(1).
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeSlots, findSlot, readDiskGpt, repairGpt, type GptEntry } from '../../dist/src/index.js';
import {
  FLATCAR_USR_TYPE, CHROMEOS_KERNEL_TYPE, SLOT_BITS_MASK, getSlotBits, isBootable, setPriority, setSlotBits, setTries,
} from '../../dist/src/gpt/attributes.js';
import { grubBoot, grubNext, grubReadGpt, vbootNext } from '../../dist/src/gpt/boot-model.js';
import { commitPlan } from '../../dist/src/gpt/commit.js';
import { crc32 } from '../../dist/src/gpt/crc32.js';
import { FLATCAR_SLOT_GUIDS, PARTITION_TYPES, guidFromBytes, guidToBytes } from '../../dist/src/gpt/guid.js';
import { headerCrc } from '../../dist/src/gpt/header.js';
import { markGood, prioritize, setNext } from '../../dist/src/gpt/prioritize.js';
import { encodeEntries, isUsed, readGpt, writeGptPlan, type GptReadResult, type GptTable } from '../../dist/src/gpt/table.js';
import { checkInvariants } from '../../dist/src/disk/transaction.js';
import { runCli } from '../helpers/cli.js';
import { asyncCodeOf, codeOf } from '../helpers/errors.js';
import { MiB, removeDir, rootOrWarn, tempDir } from '../helpers/payloads.js';
import { rng } from '../helpers/rng.js';
import { CGPT_PRIORITIZE_VECTORS } from '../helpers/cgpt-vectors.js';

const USR = FLATCAR_USR_TYPE;
const KERNEL = CHROMEOS_KERNEL_TYPE;
const ROOT = PARTITION_TYPES.COREOS_ROOT;
const canLoop = rootOrWarn('edge cases with 4096-byte loop devices (§7.26)');

let dir: string;
beforeAll(async () => {
  dir = await tempDir('gpt-edge');
});
afterAll(() => removeDir(dir));

// ---------------------------------------------------------------------------------------------
// Helpers

const bits = (priority: number, tries: number, successful: boolean, extra = 0n) => setSlotBits(extra, { priority, tries, successful });
const slot = (index: number, attributes: bigint, typeGuid: string = USR): GptEntry => ({
  index, typeGuid, uniqueGuid: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`, firstLba: 0, lastLba: 0, attributes, label: `P${index}`,
});
const pts = (entries: readonly { index: number; attributes: bigint }[], index: number) => {
  const b = getSlotBits(entries.find((e) => e.index === index)!.attributes);
  return [b.priority, b.tries, b.successful ? 1 : 0];
};

function run(cmd: string, args: string[]): { stdout: string; stderr: string; status: number } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}
const ok = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const cgptGet = (disk: string, n: number, flag: string) => ok('cgpt', ['show', '-i', String(n), flag, disk]).trim();

/** A Flatcar-like image made by sgdisk (512-byte sectors): EFI 1, USR-A 3 (P1 T0 S1), USR-B 4, OEM 6, ROOT 9. */
function sgdiskFlatcar(name: string, sizeMiB = 32, extra: string[] = [], usrA = '0101000000000000'): string {
  const path = join(dir, name);
  writeFileSync(path, new Uint8Array(sizeMiB * MiB));
  ok('sgdisk', ['-o', '-n', '1:0:+2M', '-t', '1:EF00', '-c', '1:EFI-SYSTEM',
    '-n', '3:0:+4M', '-t', `3:${USR}`, '-c', '3:USR-A', '-u', `3:${FLATCAR_SLOT_GUIDS.USR_A}`, '-A', `3:=:${usrA}`,
    '-n', '4:0:+4M', '-t', `4:${USR}`, '-c', '4:USR-B', '-u', `4:${FLATCAR_SLOT_GUIDS.USR_B}`,
    '-n', '6:0:+2M', '-t', '6:8300', '-c', '6:OEM', '-n', '9:0:0', '-t', `9:${ROOT}`, '-c', '9:ROOT', ...extra, path]);
  return path;
}

/** A ChromeOS-like image made by cgpt (notes §6.1), 512-byte sectors; KERN-A 2 (P2 S1), KERN-B 4 (P1). */
function cgptChromeos(name: string, options: { pmbr?: boolean; pad?: number } = {}): string {
  const path = join(dir, name);
  writeFileSync(path, new Uint8Array(16 * MiB));
  run('cgpt', ['create', ...(options.pad ? ['-p', String(options.pad)] : []), path]); // warns about the empty file
  if (options.pmbr !== false) ok('cgpt', ['boot', '-p', path]);
  ok('cgpt', ['add', '-i', '2', '-b', '2048', '-s', '4096', '-t', 'kernel', '-l', 'KERN-A', '-P', '2', '-T', '0', '-S', '1', path]);
  ok('cgpt', ['add', '-i', '3', '-b', '6144', '-s', '4096', '-t', 'rootfs', '-l', 'ROOT-A', path]);
  ok('cgpt', ['add', '-i', '4', '-b', '10240', '-s', '4096', '-t', 'kernel', '-l', 'KERN-B', '-P', '1', '-T', '0', '-S', '0', path]);
  ok('cgpt', ['add', '-i', '5', '-b', '14336', '-s', '4096', '-t', 'rootfs', '-l', 'ROOT-B', path]);
  return path;
}

const memReader = (disk: Uint8Array, ss: number) => (lba: number, count: number) => disk.subarray(lba * ss, (lba + count) * ss);
const readMem = (disk: Uint8Array, ss: number) => readGpt(memReader(disk, ss), ss, disk.length / ss);
const readFile = (path: string, ss = 512) => { const d = new Uint8Array(readFileSync(path)); return readMem(d, ss); };
const used = (r: GptReadResult) => r.table!.entries.filter(isUsed);

/** Writes `edit(entries)` of the table read from `disk` into a copy, with writeGptPlan, and returns it. */
function edited(disk: Uint8Array, ss: number, edit: (e: GptEntry[]) => GptEntry[]): Uint8Array {
  const r = readMem(disk, ss);
  const out = disk.slice();
  for (const w of writeGptPlan({ ...r.table!, entries: edit(used(r)) }, ss, disk.length / ss)) out.set(w.bytes, w.lba * ss);
  return out;
}

/** Edits the header at `lba` in place and recomputes its CRC over `crcSize` bytes. */
function patchHeader(disk: Uint8Array, ss: number, lba: number, edit: (v: DataView) => void, crcSize = 92): void {
  const sector = disk.subarray(lba * ss, (lba + 1) * ss);
  const v = new DataView(sector.buffer, sector.byteOffset, ss);
  edit(v);
  v.setUint32(16, headerCrc(sector, crcSize), true);
}

/** The Linux kernel without the `gpt` parameter: partitions only from a valid primary behind a PMBR (notes §4.7). */
const kernelSees = (r: GptReadResult) => (r.mbr.kind !== 'missing' && r.primary.valid ? 'primary' : undefined);

const sameFile = async (path: string, before: Uint8Array) => Buffer.compare(await fsp.readFile(path), before) === 0;

// ---------------------------------------------------------------------------------------------

describe('§7.1 tie on priority: the lower index wins', () => {
  // Also: test/gpt/select.test.ts "tie on priority: both choose the lower index (edge case 1)".
  it('both models pick the lower index whatever the array order, and vboot retries the tie partner next', () => {
    const a = slot(3, bits(2, 0, true)), b = slot(4, bits(2, 0, true));
    for (const entries of [[a, b], [b, a]]) {
      expect(grubNext(entries)).toMatchObject({ bootable: true, index: 3, written: false });
      expect(vbootNext(entries, { typeGuids: [USR] })).toMatchObject({ bootable: true, index: 3 });
    }
    // The model must not "pick the other one" when the lower index fails in vboot: it moves to 4.
    expect(vbootNext([b, a], { typeGuids: [USR], canLoad: (i) => i !== 3 })).toMatchObject({ index: 4, failed: [3] });
  });
});

describe('§7.2 priority 0 never boots', () => {
  it('P0 S1 and P0 T15 are never chosen, even when nothing else is bootable', () => {
    for (const attr of [bits(0, 0, true), bits(0, 15, false), bits(0, 15, true)]) {
      expect(isBootable(attr)).toBe(false);
      expect(grubNext([slot(3, attr), slot(4, bits(0, 0, false))])).toMatchObject({ bootable: false, reason: 'no such partition', written: false });
      expect(vbootNext([slot(3, attr)], { typeGuids: [USR] })).toMatchObject({ bootable: false, written: false });
    }
    // A P0 S1 slot next to a P1 T1 slot: the lower-priority one boots, not the "successful" one.
    expect(grubNext([slot(3, bits(0, 0, true)), slot(4, bits(1, 1, false))])).toMatchObject({ index: 4 });
  });
});

describe('§7.3 P>0 T0 S0 is skipped and keeps its priority', () => {
  it('the highest-priority failed slot is skipped by both models and its bits stay as they were (GRUB)', () => {
    const entries = [slot(3, bits(1, 0, true)), slot(4, bits(15, 0, false))];
    const g = grubNext(entries);
    expect(g).toMatchObject({ bootable: true, index: 3, written: false });
    expect(pts(g.entries, 4)).toEqual([15, 0, 0]);
    expect(vbootNext(entries, { typeGuids: [USR] })).toMatchObject({ index: 3 });
    // After a whole Flatcar fallback boot (3 re-runs), the failed slot still has P15.
    const boot = grubBoot([slot(3, bits(1, 0, true)), slot(4, bits(2, 1, false))], { canLoad: (i) => i !== 4 });
    expect(boot).toMatchObject({ bootable: true, index: 3, failed: [4] });
    expect(pts(boot.entries, 4)).toEqual([2, 0, 0]);
  });
});

describe('§7.4 S=1 and T>0: GRUB decrements, vboot does not', () => {
  // Also: select.test.ts "S = 1 and T > 0: GRUB decrements, vboot does not (edge case 4)".
  it('down to T0 over repeated GRUB boots, S and P untouched; vboot writes nothing', () => {
    let entries: GptEntry[] = [slot(3, bits(5, 3, true))];
    for (const t of [2, 1, 0]) {
      const d = grubNext(entries);
      expect(d).toMatchObject({ index: 3, written: true });
      expect(pts(d.entries, 3)).toEqual([5, t, 1]);
      entries = d.entries;
    }
    expect(grubNext(entries)).toMatchObject({ index: 3, written: false });
    const v = vbootNext([slot(3, bits(5, 3, true), KERNEL)]);
    expect(v).toMatchObject({ index: 3, written: false });
    expect(pts(v.entries, 3)).toEqual([5, 3, 1]);
  });
});

describe('§7.5 last try (T=1, S=0)', () => {
  it('GRUB writes T0 and keeps P; vboot writes T0 and P0; both boot it this time, and only GRUB-kept P matters next boot', () => {
    const entries = [slot(3, bits(1, 0, true)), slot(4, bits(2, 1, false))];
    const g = grubNext(entries);
    expect(g).toMatchObject({ bootable: true, index: 4, written: true });
    expect(pts(g.entries, 4)).toEqual([2, 0, 0]);
    const v = vbootNext(entries, { typeGuids: [USR] });
    expect(v).toMatchObject({ bootable: true, index: 4, written: true });
    expect(pts(v.entries, 4)).toEqual([0, 0, 0]);
    // Next boot: both fall back to 3.
    expect(grubNext(g.entries)).toMatchObject({ index: 3, written: false });
    expect(vbootNext(v.entries, { typeGuids: [USR] })).toMatchObject({ index: 3, written: false });
  });
});

describe('§7.6 4-bit fields: 15 is the maximum, nothing overflows into a neighbour', () => {
  it('T15/P15 fit exactly; 16 is refused by every setter and by setNext', () => {
    const a = setSlotBits(0n, { priority: 15, tries: 15, successful: false });
    expect(a).toBe(0x00ff_0000_0000_0000n);
    expect(() => setTries(a, 16)).toThrow(RangeError);
    expect(() => setPriority(a, 16)).toThrow(RangeError);
    expect(() => setSlotBits(0n, { tries: 16 })).toThrow(RangeError);
    expect(() => setNext([slot(3, bits(1, 0, true)), slot(4, 0n)], 4, { tries: 16 })).toThrow(RangeError);
    // A refused write changes nothing: the value passed in is still the value.
    expect(setSlotBits(a, { tries: 15 })).toBe(a);
    // A 64-bit overflow in a raw entry write is refused too, not truncated.
    expect(() => encodeEntries([{ ...slot(3, 1n << 64n), firstLba: 34, lastLba: 40 }], 128, 128)).toThrow(RangeError);
  });

  it('cgpt -A 0x10000 silently clears bits 48-63 (the hazard FastPatch avoids); -P 16 is refused', () => {
    const img = cgptChromeos('raw-a.img');
    ok('cgpt', ['add', '-i', '2', '-R', '1', img]);
    expect(getSlotBits(used(readFile(img)).find((e) => e.index === 2)!.attributes)).toEqual({ priority: 2, tries: 0, successful: true });
    ok('cgpt', ['add', '-i', '2', '-A', '0x10000', img]);
    const after = used(readFile(img)).find((e) => e.index === 2)!.attributes;
    expect(after & 0xffff_0000_0000_0000n).toBe(0n); // truncated to 16 bits = 0
    expect(after & 1n).toBe(1n); // the required bit below 48 is untouched
    const r = run('cgpt', ['add', '-i', '2', '-P', '16', img]);
    expect(r.status).toBe(1);
    expect(r.stderr + r.stdout).toMatch(/between 0 and 15/);
  });
});

describe('§7.7 no eligible partition: a selection error the API never produces', () => {
  it('checkInvariants refuses an all-unbootable result; random set-next / mark-good / rollback-to-good never produce one', () => {
    const before = [slot(3, bits(1, 0, true)), slot(4, 0n)];
    expect(codeOf(() => checkInvariants(before as GptEntry[], [slot(3, bits(1, 0, false)), slot(4, 0n)] as GptEntry[], USR, undefined, false))).toBe('GPT_UNSAFE');
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      // A random start state with at least one bootable slot.
      let entries: GptEntry[] = [slot(3, bits(r.int(0, 15), r.int(0, 15), r.bool())), slot(4, bits(r.int(0, 15), r.int(0, 15), r.bool()))];
      if (!entries.some((e) => isBootable(e.attributes))) entries[0] = slot(3, bits(r.int(1, 15), 0, true));
      for (let step = 0; step < 8; step++) {
        const target = r.bool() ? 3 : 4;
        const op = r.int(0, 3);
        let next: GptEntry[];
        let viaApi = true;
        if (op === 0) next = setNext(entries, target);
        else if (op === 1) next = markGood(entries, target);
        else if (op === 2 && getSlotBits(entries.find((e) => e.index === target)!.attributes).successful) next = prioritize(entries, target);
        else {
          // A boot (may legitimately use up tries); then the API must still find something.
          viaApi = false;
          const d = grubNext(entries);
          if (!d.bootable) break;
          next = d.entries;
        }
        if (viaApi) {
          const context = `seed ${seed} step ${step} op ${op} -> ${target}`;
          expect(grubNext(next).bootable, context).toBe(true);
          expect(vbootNext(next, { typeGuids: [USR] }).bootable, context).toBe(true);
          expect(() => checkInvariants(entries, next, USR, undefined, false), context).not.toThrow();
        }
        entries = next;
      }
    }
  });
});

describe('§7.8 unknown attribute bits survive every operation', () => {
  // Pure-function property: select.test.ts "every setter keeps every bit it does not name (edge case 8)".
  // Partition 3 carries bits 0, 1, 2, 30, 60, 62, 63 besides P1 S1; partition 4 bits 47, 57, 60, 62, 63.
  it('through changeSlots on a real image: set-next, boot, mark-good, rollback; sgdisk reads the full words', async () => {
    const img = sgdiskFlatcar('foreign.img', 32, ['-A', '4:=:d200800000000000', '-A', '9:=:000f000000000000'], 'd101000040000007');
    const words0 = new Map(used(readFile(img)).map((e) => [e.index, e.attributes]));
    expect(words0.get(3)! & ~SLOT_BITS_MASK).toBe(0xd000_0000_4000_0007n);
    await changeSlots(img, (e) => setNext(e, 4), { running: 3 });
    const d = grubNext(used(readFile(img)));
    await changeSlots(img, () => d.entries, { allowUnbootable: true });
    await changeSlots(img, (e) => markGood(e, 4));
    await changeSlots(img, (e) => prioritize(e, 3));
    for (const e of used(readFile(img))) {
      expect(e.attributes & ~SLOT_BITS_MASK, `partition ${e.index}`).toBe(words0.get(e.index)! & ~SLOT_BITS_MASK);
      const sg = /Attribute flags: ([0-9A-F]{16})/i.exec(ok('sgdisk', ['-i', String(e.index), img]))![1]!;
      expect(BigInt(`0x${sg}`)).toBe(e.attributes);
    }
    expect(pts(used(readFile(img)), 4)).toEqual([1, 0, 1]);
    expect(pts(used(readFile(img)), 9)).toEqual([15, 0, 0]); // ROOT's GUID-specific bits untouched
  });
});

describe('§7.9 only the boot type takes part', () => {
  // Also: select.test.ts "takes the Flatcar /usr type by default and ignores other types (edge case 9)".
  it('a ROOT entry with P15 T15 S1 is neither booted, renumbered, nor allowed to change', () => {
    const root = slot(9, bits(15, 15, true), ROOT);
    const entries = [slot(3, bits(1, 0, true)), slot(4, 0n), root];
    expect(grubNext(entries)).toMatchObject({ index: 3 });
    expect(vbootNext(entries, { typeGuids: [USR] })).toMatchObject({ index: 3 });
    // With the ChromeOS kernel type, a /usr entry is the one ignored.
    expect(vbootNext([slot(2, bits(1, 0, true), KERNEL), slot(3, bits(9, 0, true))])).toMatchObject({ index: 2 });
    for (const out of [setNext(entries, 4), markGood(entries, 3), prioritize(entries)]) expect(out.find((e) => e.index === 9)!.attributes).toBe(root.attributes);
    expect(() => prioritize(entries, 9)).toThrow(/not a slot partition/);
    const touched = entries.map((e) => (e.index === 9 ? { ...e, attributes: bits(14, 15, true) } : e));
    expect(codeOf(() => checkInvariants(entries as GptEntry[], touched as GptEntry[], USR, undefined, false))).toBe('GPT_UNSAFE');
  });
});

describe('§7.10 prioritize renumbering matches the cgpt vectors', () => {
  // The 11 vectors against the model: select.test.ts "cgpt prioritize renumbering (notes §2.4, all checked vectors)";
  // against real cgpt: prioritize-interop.test.ts "notes §2.4 vector %j prioritize %j".
  const P = (ps: number[]) => ps.map((p, i) => slot(i + 1, bits(p, i % 3, i % 2 === 0), KERNEL));
  const vectors = CGPT_PRIORITIZE_VECTORS;
  it.each(vectors)('%j -i %s %j, given in reverse array order, still gives %j with T and S untouched', (before, i, opts, after) => {
    const input = P(before);
    const out = prioritize([...input].reverse(), i, { typeGuid: KERNEL, ...opts });
    const byIndex = [...out].sort((a, b) => a.index - b.index);
    expect(byIndex.map((e) => getSlotBits(e.attributes).priority)).toEqual(after);
    byIndex.forEach((e, k) => expect(e.attributes & ~0x000f_0000_0000_0000n).toBe(input[k]!.attributes & ~0x000f_0000_0000_0000n));
  });
});

describe('§7.11 prioritize a P=0 target', () => {
  // Also: select.test.ts "target at P = 0 becomes top; other zeros stay 0 (edge case 11)".
  it('with three slots and two at P0: the target becomes top, the other zero stays 0 and keeps T/S', () => {
    const out = prioritize([slot(3, bits(4, 0, true)), slot(4, bits(0, 2, false)), slot(5, bits(0, 0, true))], 5);
    expect([pts(out, 3), pts(out, 4), pts(out, 5)]).toEqual([[1, 0, 1], [0, 2, 0], [2, 0, 1]]);
  });
});

describe('§7.12 rollback to a never-good slot (S0 T0)', () => {
  it('prioritizing alone would leave the boot on the current slot; the CLI refuses instead, writing nothing', async () => {
    const entries = [slot(3, bits(1, 0, true)), slot(4, bits(0, 0, false))];
    const prioritized = prioritize(entries, 4);
    expect(pts(prioritized, 4)).toEqual([2, 0, 0]);
    expect(grubNext(prioritized)).toMatchObject({ index: 3 }); // the silent non-rollback
    const img = sgdiskFlatcar('rollback.img');
    const before = await fsp.readFile(img);
    const r = await runCli(['gpt', 'rollback', img, '--running', 'USR-A']);
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/GPT_UNSAFE: partition 4 \(USR-B\) has never booted successfully/);
    expect(await sameFile(img, before)).toBe(true);
    // The other accepted answer: set-next gives it T>=1 and the model boots it.
    await changeSlots(img, (e) => setNext(e, 4), { running: 3 });
    expect(grubNext(used(readFile(img)))).toMatchObject({ index: 4, written: true });
  });
});

describe('§7.13 primary header CRC bad, backup good', () => {
  // Also (codec-level, not the disk path): interop.test.ts "agrees with cgpt and sgdisk on a broken primary, and repairs it like cgpt repair".
  it('reads from the backup, and repairGpt writes the same bytes as cgpt repair on a copy', async () => {
    const img = cgptChromeos('p-crc.img');
    const good = await fsp.readFile(img);
    const bad = Buffer.from(good);
    bad[512 + 16] ^= 0x01;
    await fsp.writeFile(img, bad);
    const copy = join(dir, 'p-crc-cgpt.img');
    await fsp.writeFile(copy, bad);
    const r = await readDiskGpt(img);
    expect(r.source).toBe('backup');
    expect(r.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^header at LBA 1: header CRC/)]);
    expect(pts(used(r), 2)).toEqual([2, 0, 1]);
    const cg = run('cgpt', ['repair', copy]);
    expect(cg.status).toBe(0);
    expect(cg.stdout + cg.stderr).toMatch(/Primary Header is updated/);
    await repairGpt(img);
    const ours = await fsp.readFile(img), theirs = await fsp.readFile(copy);
    expect(Buffer.compare(ours.subarray(0, 34 * 512), theirs.subarray(0, 34 * 512))).toBe(0);
    expect(Buffer.compare(ours, theirs)).toBe(0);
    expect(Buffer.compare(ours, good)).toBe(0);
  });
});

describe('§7.14 backup header CRC bad', () => {
  it('primary is used, the flip is refused (as cgpt add refuses) until repaired, then allowed', async () => {
    const img = cgptChromeos('b-crc.img');
    const bytes = await fsp.readFile(img);
    bytes[bytes.length - 512 + 16] ^= 0x01;
    await fsp.writeFile(img, bytes);
    const r = await readDiskGpt(img);
    expect(r.source).toBe('primary');
    expect(r.problems[0]).toMatchObject({ place: 'backup', severity: 'invalid' });
    expect(await asyncCodeOf(() => changeSlots(img, (e) => setNext(e, 4, { typeGuid: KERNEL, tries: 6 }), { typeGuid: KERNEL }))).toBe('GPT_CORRUPT');
    expect(await sameFile(img, bytes)).toBe(true);
    const copy = join(dir, 'b-crc-cgpt.img');
    await fsp.writeFile(copy, bytes);
    const peer = run('cgpt', ['add', '-i', '4', '-T', '6', copy]);
    expect(peer.status).toBe(1);
    expect(peer.stderr).toMatch(/cgpt repair/);
    await repairGpt(img);
    await changeSlots(img, (e) => setNext(e, 4, { typeGuid: KERNEL, tries: 6 }), { typeGuid: KERNEL });
    expect([cgptGet(img, 4, '-P'), cgptGet(img, 4, '-T'), cgptGet(img, 4, '-S')]).toEqual(['2', '6', '0']);
    expect(run('cgpt', ['show', img]).stderr).toBe('');
  });
});

describe('§7.15 both copies valid, entries differ (S2, S6)', () => {
  it('the primary wins with an "out of sync" warning; sfdisk -V does not notice, sgdisk and cgpt do', () => {
    const img = sgdiskFlatcar('s2.img');
    const old = new Uint8Array(readFileSync(img));
    const next = edited(old, 512, (e) => setNext(e, 4));
    const last = old.length / 512 - 1;
    for (const [state, fromNew, expectState] of [['S2', [last - 32, last], [0, 0, 0]], ['S6', [1, 2], [2, 1, 0]]] as const) {
      const disk = old.slice();
      for (const lba of fromNew) disk.set(next.subarray(lba * 512, (lba + 1) * 512), lba * 512);
      const r = readMem(disk, 512);
      expect(r.source, state).toBe('primary');
      expect(r.primary.valid && r.backup.valid, state).toBe(true);
      expect(pts(used(r), 4), state).toEqual(expectState);
      expect(r.problems.map((p) => p.message), state).toContain('primary and backup entry arrays differ (the primary wins; repair before writing)');
      expect(grubReadGpt(r), state).toMatchObject({ source: 'primary', notes: ['backup GPT out of sync (header)'] });
      const path = join(dir, `${state}.img`);
      writeFileSync(path, disk);
      expect(run('sfdisk', ['-V', path]).stdout, state).toMatch(/No errors detected/);
      const sg = run('sgdisk', ['-v', path]);
      expect(sg.stderr, state).toMatch(/differ|ERROR/);
      expect(run('cgpt', ['show', path]).stderr, state).toMatch(/WARNING/);
    }
  });
});

/** Old and new disks that differ by a flip (set-next USR-B), and the torn states of notes §5.2. */
function tornStates(): { old: Uint8Array; next: Uint8Array; states: Record<string, Uint8Array> } {
  const old = new Uint8Array(readFileSync(sgdiskFlatcar('torn.img')));
  const next = edited(old, 512, (e) => setNext(e, 4));
  const last = old.length / 512 - 1;
  const sectors = { 'P-hdr': 1, 'P-ent': 2, 'B-ent': last - 32, 'B-hdr': last };
  const make = (...names: (keyof typeof sectors)[]) => {
    const d = old.slice();
    for (const n of names) d.set(next.subarray(sectors[n] * 512, (sectors[n] + 1) * 512), sectors[n] * 512);
    return d;
  };
  return {
    old, next,
    states: {
      S1: make('B-hdr'), S7: make('B-ent'), S2: make('B-hdr', 'B-ent'), S3: make('B-hdr', 'B-ent', 'P-hdr'), S4: make('B-hdr', 'B-ent', 'P-ent'),
      S5: make('P-hdr'), S8: make('P-ent'), S6: make('P-hdr', 'P-ent'), W3a: make('P-hdr', 'P-ent', 'B-hdr'), W3b: make('P-hdr', 'P-ent', 'B-ent'),
    },
  };
}

describe('§7.16 primary header valid, its entries bad', () => {
  it('S8 (backup equal): old state via the backup for FastPatch and GRUB; S4/S5 (backup not equal): GRUB fails, FastPatch reads the backup', () => {
    const { states } = tornStates();
    const s8 = readMem(states.S8!, 512);
    expect(s8.primary.header?.myLba).toBe(1);
    expect(s8.primary.valid).toBe(false);
    expect(s8.source).toBe('backup');
    expect(pts(used(s8), 4)).toEqual([0, 0, 0]);
    expect(grubReadGpt(s8)).toEqual({ source: 'backup', notes: ['primary GPT entries invalid'] });
    for (const name of ['S4', 'S5'] as const) {
      const r = readMem(states[name]!, 512);
      expect(r.primary.header?.myLba, name).toBe(1);
      expect(grubReadGpt(r), name).toEqual({ source: undefined, notes: ['backup GPT out of sync (header)', 'primary GPT entries invalid'] });
      expect(r.source, name).toBe('backup');
    }
  });
});

describe('§7.17 torn-write fixtures and the toolkit write order', () => {
  const OLD = [0, 0, 0], NEW = [2, 1, 0];
  // [state, FastPatch/cgpt reading, GRUB, kernel without `gpt`] from notes §5.2; undefined = fails / no partitions.
  const table: Array<[string, number[], number[] | undefined, number[] | undefined]> = [
    ['S1', OLD, OLD, OLD], ['S7', OLD, OLD, OLD], ['S2', OLD, OLD, OLD], ['S3', NEW, NEW, undefined], ['S4', NEW, undefined, undefined],
    ['S5', OLD, undefined, undefined], ['S8', OLD, OLD, undefined], ['S6', NEW, NEW, NEW], ['W3a', NEW, NEW, NEW], ['W3b', NEW, NEW, NEW],
  ];
  it('each reader model resolves each state as the notes say', () => {
    const { states } = tornStates();
    for (const [name, ours, grub, kernel] of table) {
      const r = readMem(states[name]!, 512);
      // When GRUB reads a copy, it is the one FastPatch reads too (both prefer a valid primary).
      const copyOf = (src: 'primary' | 'backup') => {
        expect(r.source, `${name}: GRUB and FastPatch read the same copy`).toBe(src);
        return pts(used(r), 4);
      };
      expect(pts(used(r), 4), `${name} FastPatch`).toEqual(ours);
      const g = grubReadGpt(r).source;
      expect(g === undefined ? undefined : copyOf(g), `${name} GRUB`).toEqual(grub);
      expect(kernelSees(r) === undefined ? undefined : pts(used(r), 4), `${name} kernel`).toEqual(kernel);
    }
  });

  it('a crash after any single sector write of a two-sector flip never leaves S4 or S5; the other orders would', () => {
    // Slots at partitions 3 (P3 S1) and 9 (P0): set-next 9 lowers 3 to P1 and raises 9, two different
    // entry sectors (LBA 2 and 4) in each copy.
    const base = new Uint8Array(readFileSync(sgdiskFlatcar('torn2.img', 32, ['-t', `9:${USR}`], '0103000000000000')));
    const read = memReader(base, 512);
    const r = readMem(base, 512);
    const after = setNext(used(r), 9);
    const regions = writeGptPlan({ ...r.table!, entries: after }, 512, base.length / 512).filter((x) => x.role !== 'pmbr');
    const plan = commitPlan(regions as never, 512, read);
    const writes = plan.flat();
    expect(writes.map((w) => `${w.role}@${w.lba}`)).toEqual(['backup-header@' + (base.length / 512 - 1), `backup-entries@${base.length / 512 - 33}`, `backup-entries@${base.length / 512 - 31}`, 'primary-header@1', 'primary-entries@2', 'primary-entries@4']);
    expect(plan.map((p) => p.length)).toEqual([3, 1, 2]); // flush points: after the backup, after P-hdr, after P-ent
    const replay = (order: typeof writes) => {
      const disk = base.slice();
      const sources: (string | undefined)[] = [];
      for (const w of order) {
        disk.set(w.bytes, w.lba * 512);
        const view = readMem(disk, 512);
        const g = grubReadGpt(view);
        sources.push(g.source);
        if (g.source !== undefined) {
          const state = JSON.stringify([pts(used(view), 3), pts(used(view), 9)]);
          expect([JSON.stringify([pts(used(r), 3), pts(used(r), 9)]), JSON.stringify([pts(after, 3), pts(after, 9)])]).toContain(state);
        }
      }
      return sources;
    };
    expect(replay(writes)).not.toContain(undefined);
    // Every interleaving within a phase (before its flush) is also safe: reverse each phase.
    expect(replay(plan.flatMap((p) => [...p].reverse()))).not.toContain(undefined);
    // cgpt's order (primary header first) and sgdisk's (primary entries before its header) do hit a GRUB failure.
    const by = (role: string) => writes.filter((w) => w.role === role);
    expect(replay([...by('primary-header'), ...by('primary-entries'), ...by('backup-header'), ...by('backup-entries')])).toContain(undefined);
    expect(replay([...by('backup-entries'), ...by('backup-header'), ...by('primary-entries'), ...by('primary-header')])).toContain(undefined);
  });
});

describe('§7.19 both copies invalid', () => {
  // Also: create-repair.test.ts "refuses when neither copy is valid, writing nothing".
  it('valid headers whose entry arrays both fail their CRC: no table, no flip, no repair, nothing written', async () => {
    const img = sgdiskFlatcar('both-bad.img');
    const bytes = await fsp.readFile(img);
    bytes[2 * 512 + 300] ^= 0x10;
    bytes[bytes.length - 33 * 512 + 300] ^= 0x10;
    await fsp.writeFile(img, bytes);
    const r = await readDiskGpt(img);
    expect(r.primary.header?.myLba).toBe(1);
    expect(r.backup.header?.myLba).toBe(bytes.length / 512 - 1);
    expect(r.source).toBeUndefined();
    expect(r.table).toBeUndefined();
    expect(grubReadGpt(r).source).toBeUndefined();
    expect(await asyncCodeOf(() => repairGpt(img))).toBe('GPT_CORRUPT');
    expect(await asyncCodeOf(() => changeSlots(img, (e) => setNext(e, 4)))).toBe('GPT_CORRUPT');
    expect(await sameFile(img, bytes)).toBe(true);
  });
});

describe('§7.20 missing or hybrid PMBR', () => {
  // Also: codec.test.ts "reports a missing or hybrid PMBR and a backup not at the end".
  it('a cgpt image without `cgpt boot -p` is reported and not flipped; repair adds a PMBR that sgdisk accepts', async () => {
    const img = cgptChromeos('no-pmbr.img', { pmbr: false });
    const bytes = await fsp.readFile(img);
    const r = await readDiskGpt(img);
    expect(r.mbr.kind).toBe('missing');
    expect(r.source).toBe('primary');
    expect(r.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^no protective MBR \(the Linux kernel ignores the GPT\)/)]);
    expect(kernelSees(r)).toBeUndefined();
    expect(await asyncCodeOf(() => changeSlots(img, (e) => e, { typeGuid: KERNEL }))).toBe('GPT_CORRUPT');
    expect(await sameFile(img, bytes)).toBe(true);
    const fixed = await repairGpt(img);
    expect(fixed.written).toBe(1); // only LBA 0
    expect((await readDiskGpt(img)).mbr.kind).toBe('protective');
    const v = run('sgdisk', ['-v', img]);
    expect(v.stderr).toBe('');
    expect(v.stdout).toContain('No problems found.');
  });

  it('a hybrid MBR is accepted: the flip goes through and LBA 0 is kept byte for byte', async () => {
    const img = sgdiskFlatcar('hybrid.img');
    const bytes = await fsp.readFile(img);
    bytes.set([0x80, 0, 0, 0, 0x0c, 0, 0, 0, 0x00, 0x08, 0, 0, 0x00, 0x10, 0, 0], 462); // a FAT32 record over the ESP
    await fsp.writeFile(img, bytes);
    expect((await readDiskGpt(img)).mbr.kind).toBe('hybrid');
    await changeSlots(img, (e) => setNext(e, 4), { running: 3 });
    const after = await fsp.readFile(img);
    expect(Buffer.compare(after.subarray(0, 512), bytes.subarray(0, 512))).toBe(0);
    expect(pts(used(readFile(img)), 4)).toEqual([2, 1, 0]);
  });
});

describe('§7.21 HeaderSize 96 with a CRC over 96 bytes', () => {
  // Policy from header.ts/table.ts: read it (spec-valid) with a warning, refuse flips, normalise to 92 only in `repair`.
  it('readable, GRUB-invalid, not flipped; repair rewrites 92-byte headers that cgpt and sgdisk accept', async () => {
    const img = sgdiskFlatcar('hs96.img');
    const d = new Uint8Array(readFileSync(img));
    const last = d.length / 512 - 1;
    for (const lba of [1, last]) patchHeader(d, 512, lba, (v) => v.setUint32(12, 96, true), 96);
    writeFileSync(img, d);
    const r = await readDiskGpt(img);
    expect(r.source).toBe('primary');
    expect(r.primary.header!.headerSize).toBe(96);
    expect(r.problems.every((p) => p.severity === 'warning')).toBe(true);
    expect(r.problems.map((p) => p.message)).toContain('header size 96 is not 92 (GRUB computes the CRC over 92 bytes)');
    expect(grubReadGpt(r).source).toBeUndefined();
    expect(await asyncCodeOf(() => changeSlots(img, (e) => setNext(e, 4)))).toBe('GPT_CORRUPT');
    expect(await sameFile(img, d)).toBe(true);
    await repairGpt(img);
    const fixed = await readDiskGpt(img);
    expect(fixed.problems).toEqual([]);
    expect(fixed.primary.header!.headerSize).toBe(92);
    expect(fixed.backup.header!.headerSize).toBe(92);
    expect(used(fixed).map((e) => e.attributes)).toEqual(used(r).map((e) => e.attributes));
    expect(run('cgpt', ['show', img]).stderr).toBe('');
  });
});

describe('§7.22 entry count or size other than 128', () => {
  // Policy: read (with warnings), never write: flips and repair refuse, since cgpt/GRUB/the kernel refuse such tables.
  it.each([[64, 128], [256, 128], [128, 256]])('%i entries of %i bytes: cgpt rejects, FastPatch reads but will not write', async (count, size) => {
    const sectors = (16 * MiB) / 512;
    const n = (count * size) / 512;
    const table: GptTable = {
      diskGuid: '00000000-0000-0000-0000-000000000001', firstUsableLba: 2 + n, lastUsableLba: sectors - 2 - n,
      primaryEntriesLba: 2, backupHeaderLba: sectors - 1, backupEntriesLba: sectors - 1 - n, entryCount: count, entrySize: size,
      entries: [
        { ...slot(3, bits(1, 0, true)), firstLba: 2048, lastLba: 4095 },
        { ...slot(4, 0n), firstLba: 4096, lastLba: 6143 },
      ],
    };
    const disk = new Uint8Array(16 * MiB);
    for (const w of writeGptPlan(table, 512, sectors)) disk.set(w.bytes, w.lba * 512);
    const img = join(dir, `count-${count}-${size}.img`);
    writeFileSync(img, disk);
    const r = await readDiskGpt(img);
    expect(r.source).toBe('primary');
    expect(r.problems.length).toBeGreaterThan(0);
    expect(r.problems.every((p) => p.severity === 'warning')).toBe(true);
    expect(pts(used(r), 3)).toEqual([1, 0, 1]);
    expect(grubReadGpt(r).source).toBe(count * size >= 16384 ? 'primary' : undefined);
    expect(run('cgpt', ['show', img]).stderr).toMatch(/invalid/i);
    expect(await asyncCodeOf(() => changeSlots(img, (e) => setNext(e, 4)))).toBe('GPT_CORRUPT');
    expect(await asyncCodeOf(() => repairGpt(img))).toBe('GPT_CORRUPT');
    expect(await sameFile(img, disk)).toBe(true);
  });
});

describe('§7.23 primary entries not at LBA 2 (cgpt create -p)', () => {
  it('entries are found through PartitionEntryLBA, the flip is allowed, and cgpt reads the result', async () => {
    const img = cgptChromeos('padded.img', { pad: 8 });
    const r = await readDiskGpt(img);
    expect(r.primary.header!.partitionEntryLba).toBe(10);
    expect(r.problems).toEqual([]);
    expect(pts(used(r), 2)).toEqual([2, 0, 1]);
    const res = await changeSlots(img, (e) => setNext(e, 4, { typeGuid: KERNEL, tries: 6 }), { typeGuid: KERNEL, running: 2 });
    expect(res.phases.flat().find((w) => w.role === 'primary-entries')!.lba).toBe(10);
    expect([cgptGet(img, 4, '-P'), cgptGet(img, 4, '-T'), cgptGet(img, 2, '-P')]).toEqual(['2', '6', '1']);
    expect(run('cgpt', ['show', img]).stderr).toBe('');
    // LBA 2..9 (the padding) were never written.
    expect((await fsp.readFile(img)).subarray(2 * 512, 10 * 512).every((b) => b === 0)).toBe(true);
  });
});

describe('§7.24 backup not at the last LBA (image dd-ed to a larger disk)', () => {
  it('GRUB would use AlternateLBA; FastPatch reports it and refuses to flip rather than move the backup; the plan keeps the geometry', async () => {
    const img = sgdiskFlatcar('grown.img', 32);
    await fsp.truncate(img, 40 * MiB);
    const bytes = await fsp.readFile(img);
    const r = await readDiskGpt(img);
    expect(r.source).toBe('primary');
    expect(r.backup.valid).toBe(true);
    expect(r.problems.map((p) => p.message)).toContain(`AlternateLBA ${32 * 2048 - 1} is not the last LBA ${40 * 2048 - 1} (cgpt calls the backup invalid)`);
    expect(grubReadGpt(r).source).toBe('primary');
    expect(await asyncCodeOf(() => changeSlots(img, (e) => setNext(e, 4), { running: 3 }))).toBe('GPT_CORRUPT');
    expect(await sameFile(img, bytes)).toBe(true);
    const plan = writeGptPlan({ ...r.table!, entries: setNext(used(r), 4) }, 512, 40 * 2048);
    expect(plan.find((w) => w.role === 'backup-header')!.lba).toBe(32 * 2048 - 1);
    expect(plan.find((w) => w.role === 'backup-entries')!.lba).toBe(32 * 2048 - 33);
  });

  it('repair moves the backup to the end only when asked (--move-backup); sgdisk then finds no problems and flips work', async () => {
    const img = sgdiskFlatcar('grown2.img', 32);
    await fsp.truncate(img, 40 * MiB);
    const bytes = await fsp.readFile(img);
    const plain = await repairGpt(img).catch((e: Error) => e);
    expect(plain).toMatchObject({ code: 'GPT_CORRUPT', message: expect.stringMatching(/repair cannot fix this: AlternateLBA .* \(add --move-backup .*\); nothing written$/) });
    expect(await sameFile(img, bytes)).toBe(true);
    const r = await runCli(['gpt', 'repair', img, '--move-backup']);
    expect(r.code, r.stderr).toBe(0);
    const after = await readDiskGpt(img);
    expect(after.problems).toEqual([]);
    expect(after.table!.backupHeaderLba).toBe(40 * 2048 - 1);
    expect(after.table!.lastUsableLba, 'the usable area is not grown: that is a partitioning decision').toBe(readFile(img).table!.lastUsableLba);
    const v = run('sgdisk', ['-v', img]);
    expect(v.stdout).toContain('No problems found.');
    await changeSlots(img, (e) => setNext(e, 4), { running: 3 });
    expect(pts(used(await readDiskGpt(img)), 4)).toEqual([2, 1, 0]);
  });
});

describe('§7.25 AlternateLBA beyond the end of the device (truncated image)', () => {
  it('reported, nothing written, the file keeps its size; a plan past the end is refused', async () => {
    const img = sgdiskFlatcar('truncated.img', 32);
    const table = readFile(img).table!;
    await fsp.truncate(img, 31 * MiB);
    const bytes = await fsp.readFile(img);
    const r = await readDiskGpt(img);
    expect(r.problems.map((p) => p.message).join('\n')).toMatch(/AlternateLBA 65535 is beyond the last LBA 63487/);
    expect(r.source).toBeUndefined();
    expect(await asyncCodeOf(() => changeSlots(img, (e) => e))).toBe('GPT_CORRUPT');
    expect(await asyncCodeOf(() => repairGpt(img))).toBe('GPT_CORRUPT');
    expect(await sameFile(img, bytes)).toBe(true);
    expect((await fsp.stat(img)).size).toBe(31 * MiB);
    expect(() => writeGptPlan(table, 512, 31 * 2048)).toThrow(/beyond the last LBA/);
  });
});

describe('§7.26 4096-byte logical sectors', () => {
  it.runIf(canLoop)('sfdisk on a 4Kn loop device: offsets 4096/8192, 4-sector arrays, FirstUsable 6; a flip read back by cgpt and sgdisk', async () => {
    const backing = join(dir, '4kn.img');
    writeFileSync(backing, new Uint8Array(32 * MiB));
    const dev = execFileSync('losetup', ['--find', '--show', '--sector-size', '4096', backing], { encoding: 'utf8' }).trim();
    try {
      const layout = `label: gpt\nfirst-lba: 6\nstart=256, size=1024, type=${USR}, name="USR-A", attrs="GUID:48,56"\nsize=1024, type=${USR}, name="USR-B"\n`;
      const s = spawnSync('sfdisk', ['--no-reread', '--no-tell-kernel', dev], { input: layout, encoding: 'utf8' });
      expect(s.status, s.stderr).toBe(0);
      const r = await readDiskGpt(dev);
      expect(r.sectorSize).toBe(4096);
      expect(r.problems).toEqual([]);
      expect(r.primary.header!.partitionEntryLba).toBe(2);
      expect(r.primary.header!.firstUsableLba).toBe(6);
      expect(r.backup.lba).toBe(8191);
      expect(r.backup.header!.partitionEntryLba).toBe(8191 - 4);
      await changeSlots(dev, (e) => setNext(e, 2), { running: 1 });
      expect([cgptGet(dev, 2, '-P'), cgptGet(dev, 2, '-T'), cgptGet(dev, 1, '-S')]).toEqual(['2', '1', '1']);
      const v = run('sgdisk', ['-v', dev]);
      expect(v.stderr).toBe('');
      expect(v.stdout).toContain('No problems found.');
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
    const raw = readFileSync(backing);
    expect(raw.subarray(4096, 4104).toString('latin1')).toBe('EFI PART');
    expect(raw.subarray(512, 520).toString('latin1')).not.toBe('EFI PART');
    // Entry 2 (USR-B) at byte 8192 + 128: its tries nibble is set.
    expect(raw[8192 + 128 + 54]).toBe(0x12);
  });

  it.runIf(canLoop)('a 512-byte image on a 4Kn device: "EFI PART" at byte 512 is detected, not misparsed, and nothing is written', async () => {
    const img = sgdiskFlatcar('512-on-4k.img', 32);
    const bytes = await fsp.readFile(img);
    const dev = execFileSync('losetup', ['--find', '--show', '--sector-size', '4096', img], { encoding: 'utf8' }).trim();
    try {
      const r = await readDiskGpt(dev);
      expect(r.sectorSize).toBe(4096);
      expect(r.source).toBeUndefined();
      expect(r.problems.map((p) => p.message)).toContain('a GPT header is at byte 512: the table was made for 512-byte sectors');
      expect(await asyncCodeOf(() => changeSlots(dev, (e) => setNext(e, 4)))).toBe('GPT_CORRUPT');
      expect(await asyncCodeOf(() => repairGpt(dev))).toBe('GPT_CORRUPT');
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
    expect(await sameFile(img, bytes)).toBe(true);
  });
});

describe('§7.27 GUID byte order and case', () => {
  // Also: codec.test.ts "GUIDs".
  it('mixed-endian on disk, either case in; cgpt prints uppercase, gptprio reports lowercase; lookup ignores case', () => {
    const bytes = guidToBytes(FLATCAR_SLOT_GUIDS.USR_B.toLowerCase());
    expect(Buffer.from(bytes).toString('hex')).toBe('5cd33de02d7c474ab3fe27f15780a57c');
    expect(guidFromBytes(bytes)).toBe('E03DD35C-7C2D-4A47-B3FE-27F15780A57C');
    const img = sgdiskFlatcar('guid.img');
    const entries = used(readFile(img));
    expect(cgptGet(img, 4, '-u')).toBe(entries.find((e) => e.index === 4)!.uniqueGuid);
    expect(cgptGet(img, 4, '-t')).toBe(USR);
    expect(findSlot(entries, 'e03dd35c-7c2d-4a47-b3fe-27f15780a57c').index).toBe(4);
    const next = setNext(entries, 4);
    const boot = grubNext(next);
    expect(boot.bootable && boot.uniqueGuid).toBe('e03dd35c-7c2d-4a47-b3fe-27f15780a57c');
    // The on-disk bytes of the unique GUID of entry 4 (array offset 384 + 16).
    const raw = readFileSync(img);
    expect(raw.subarray(1024 + 384 + 16, 1024 + 384 + 32).toString('hex')).toBe('5cd33de02d7c474ab3fe27f15780a57c');
  });
});

describe('§7.28 UTF-16LE labels', () => {
  // Also: codec.test.ts "round-trips every attribute bit, 36-unit and non-ASCII names".
  it('lookup by label in any case (issue 11), the 36-unit limit counted in UTF-16 units, non-ASCII read back by sfdisk', () => {
    const entries = used(readFile(sgdiskFlatcar('labels.img')));
    expect(findSlot(entries, 'USR-A').index).toBe(3);
    expect(findSlot(entries, 'usr-a').index).toBe(3);
    expect(codeOf(() => findSlot([...entries, { ...entries[0]!, index: 7, label: 'usr-a' }], 'USR-A'))).toBe('USAGE');
    const e = (label: string) => [{ ...slot(4, 0n), label, firstLba: 40, lastLba: 50 }];
    expect(() => encodeEntries(e('x'.repeat(36)), 128, 128)).not.toThrow();
    expect(() => encodeEntries(e('x'.repeat(37)), 128, 128)).toThrow(RangeError);
    expect(() => encodeEntries(e(`${'x'.repeat(35)}😀`), 128, 128)).toThrow(RangeError); // 35 + a surrogate pair = 37 units
    const bytes = encodeEntries(e(`${'x'.repeat(34)}😀`), 128, 128);
    expect(bytes.subarray(384 + 56 + 68, 384 + 56 + 72)).toEqual(new Uint8Array([0x3d, 0xd8, 0x00, 0xde]));
    // A non-ASCII label written by FastPatch, read by sfdisk and found by name.
    const img = sgdiskFlatcar('labels2.img');
    const d = edited(new Uint8Array(readFileSync(img)), 512, (x) => x.map((p) => (p.index === 4 ? { ...p, label: 'USR-Ḃ-données' } : p)));
    writeFileSync(img, d);
    // sfdisk prints the UTF-8 bytes of the name escaped: U+1E02 = e1 b8 82, U+00E9 = c3 a9.
    expect(ok('sfdisk', ['--dump', img])).toContain('name="USR-\\xe1\\xb8\\x82-donn\\xc3\\xa9es"');
    expect(findSlot(used(readFile(img)), 'USR-Ḃ-données').index).toBe(4);
  });
});

describe('§7.29 partition numbers vs entry indices', () => {
  it('Flatcar gaps (2, 5, 7, 8 unused): number N is entry N-1; a flip of partition 4 touches only entry 3 bytes 48..55', async () => {
    const img = sgdiskFlatcar('gaps.img');
    const r = readFile(img);
    expect(r.table!.entries.slice(0, 9).map((e) => (isUsed(e) ? e.label : '-'))).toEqual(['EFI-SYSTEM', '-', 'USR-A', 'USR-B', '-', 'OEM', '-', '-', 'ROOT']);
    expect(findSlot(used(r), '9').label).toBe('ROOT');
    expect(cgptGet(img, 9, '-l')).toBe('ROOT');
    expect(codeOf(() => findSlot(used(r), '5'))).toBe('USAGE');
    const before = await fsp.readFile(img);
    await changeSlots(img, (e) => setNext(e, 4), { running: 3 });
    const after = await fsp.readFile(img);
    const changed: number[] = [];
    for (let i = 1024; i < 1024 + 16384; i++) if (before[i] !== after[i]) changed.push(i - 1024);
    expect(changed.length).toBeGreaterThan(0);
    // Partition 4's attributes (entry 3) and partition 3's priority byte (entry 2): nothing else.
    expect(changed.every((o) => (o >= 3 * 128 + 48 && o < 3 * 128 + 56) || (o >= 2 * 128 + 48 && o < 2 * 128 + 56))).toBe(true);
    expect(changed).toContain(3 * 128 + 54);
  });
});

describe('§7.30 idempotence', () => {
  // Also: cli.test.ts "is idempotent: marking good twice, or repairing a healthy disk, leaves the bytes as they are (edge case 30)".
  it('flipping to the slot already next, marking good twice, or prioritizing the active slot: zero sectors written, bytes identical', async () => {
    const img = sgdiskFlatcar('idem.img');
    await changeSlots(img, (e) => setNext(e, 4), { running: 3 });
    for (const op of [(e: GptEntry[]) => setNext(e, 4), (e: GptEntry[]) => prioritize(e, 4)]) {
      const before = await fsp.readFile(img);
      const res = await changeSlots(img, (e) => op(e), { running: 3 });
      expect(res.phases).toEqual([]);
      expect(await sameFile(img, before)).toBe(true);
    }
    await changeSlots(img, (e) => markGood(e, 4));
    const once = await fsp.readFile(img);
    const twice = await changeSlots(img, (e) => markGood(e, 4));
    expect(twice.phases).toEqual([]);
    expect(await sameFile(img, once)).toBe(true);
    const copy = join(dir, 'idem-cgpt.img');
    await fsp.writeFile(copy, once);
    expect(run('cgpt', ['repair', copy]).stdout).toBe('');
    expect(await sameFile(copy, once)).toBe(true);
  });
});

describe('§7.32 CRC known answers', () => {
  // Also: codec.test.ts "crc32" (check values, zlib agreement).
  it('crc32("123456789"), header CRC with the field zeroed, entries CRC over count × size (not whole sectors)', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    const img = cgptChromeos('crc.img');
    const raw = new Uint8Array(readFileSync(img));
    const hdr = raw.slice(512, 512 + 92);
    const stored = new DataView(hdr.buffer).getUint32(16, true);
    expect(crc32(hdr)).not.toBe(stored); // with the CRC field in place it cannot match
    hdr.fill(0, 16, 20);
    expect(crc32(hdr)).toBe(stored);
    expect(zlibCrc32(hdr)).toBe(stored);
    // 56 entries of 128 bytes = 7168 bytes: 1.75 sectors of 4096. The CRC covers 7168 bytes only.
    const ss = 4096, sectors = 2048;
    const table: GptTable = {
      diskGuid: '00000000-0000-0000-0000-000000000001', firstUsableLba: 4, lastUsableLba: sectors - 4,
      primaryEntriesLba: 2, backupHeaderLba: sectors - 1, backupEntriesLba: sectors - 3, entryCount: 56, entrySize: 128,
      entries: [{ ...slot(3, bits(1, 0, true)), firstLba: 256, lastLba: 511 }],
    };
    const disk = new Uint8Array(ss * sectors);
    for (const w of writeGptPlan(table, ss, sectors)) disk.set(w.bytes, w.lba * ss);
    // Garbage in the unused tail of the last entries sector must not matter.
    disk.fill(0xa5, 2 * ss + 7168, 4 * ss);
    const h = new DataView(disk.buffer, ss, ss);
    expect(h.getUint32(88, true)).toBe(zlibCrc32(disk.subarray(2 * ss, 2 * ss + 7168)));
    const r = readMem(disk, ss);
    expect(r.primary.valid).toBe(true);
    expect(r.primary.entriesBytes!.length).toBe(7168);
  });
});
