/**
 * Models of the two bootloaders that read the A/B attribute bits, so an update, a failed boot and
 * a rollback can be run without real firmware (reference notes §2.1-§2.3):
 *  - GRUB `gptprio.next` (coreos/grub `grub-core/commands/gptprio.c`, unchanged in Flatcar's 2.06
 *    patch), plus Flatcar's `fallback="0 0 0"` re-runs;
 *  - ChromeOS vboot `GptNextKernelEntry` + `GptUpdateKernelEntry` (`firmware/lib/cgptlib/cgptlib.c`).
 * Plain data in, plain data out. Only the entries' A/B bits are modelled; header/entry-array
 * validation and repair belong to the codec.
 */
import { CHROMEOS_KERNEL_TYPE, FLATCAR_USR_TYPE, getSlotBits, sameGuid, setSlotBits, type SlotEntry } from './attributes.js';

/**
 * What one bootloader run decides. `entries` is the table after its attribute writes (a copy), of
 * the caller's entry type (a GptEntry table in, GptEntry entries out).
 */
export type BootDecision<E extends SlotEntry = SlotEntry> =
  | {
      bootable: true;
      /** Partition number booted. */
      index: number;
      /** Its unique GUID in lowercase, as gptprio sets `-u VAR` (undefined when the entry has none). */
      uniqueGuid: string | undefined;
      entries: E[];
      /** Whether the bootloader writes the table back (false: nothing changed, nothing written). */
      written: boolean;
      /** Partition numbers that were tried and failed to load before `index`, in order. */
      failed: number[];
    }
  | {
      bootable: false;
      /** The bootloader's message: GRUB "no such partition" (Flatcar aborts the boot), vboot "no valid kernel" (recovery). */
      reason: string;
      entries: E[];
      written: boolean;
      failed: number[];
    };

const copy = <E extends SlotEntry>(entries: readonly E[]): E[] => entries.map((e) => ({ ...e }));

/**
 * One `gptprio.next` call: scan entries in partition order; of the `typeGuid` entries with
 * `tries > 0 || successful`, the first with the highest priority > 0 wins (ties: lowest index).
 * If it has tries left, tries -= 1 (even when successful = 1), priority and successful kept, and
 * the table is written; with tries = 0 nothing is written. No candidate: not bootable, nothing
 * written. `typeGuid` defaults to the Flatcar `/usr` type, which GRUB hard-codes.
 */
export function grubNext<E extends SlotEntry>(entries: readonly E[], typeGuid: string = FLATCAR_USR_TYPE): BootDecision<E> {
  let best: E | undefined;
  let bestPriority = 0;
  for (const e of [...entries].sort((a, b) => a.index - b.index)) {
    if (!sameGuid(e.typeGuid, typeGuid)) continue;
    const { priority, tries, successful } = getSlotBits(e.attributes);
    if ((tries > 0 || successful) && priority > bestPriority) {
      best = e;
      bestPriority = priority;
    }
  }
  if (best === undefined) return { bootable: false, reason: 'no such partition', entries: copy(entries), written: false, failed: [] };
  const { tries } = getSlotBits(best.attributes);
  const chosen = best;
  const out = entries.map((e) => (e === chosen && tries > 0 ? { ...e, attributes: setSlotBits(e.attributes, { tries: tries - 1 }) } : { ...e }));
  return { bootable: true, index: chosen.index, uniqueGuid: chosen.uniqueGuid?.toLowerCase(), entries: out, written: tries > 0, failed: [] };
}

export interface GrubBootOptions {
  typeGuid?: string;
  /** Whether GRUB manages to load the slot it picked; default always. */
  canLoad?: (index: number) => boolean;
  /** Extra runs of the default entry after a load failure: Flatcar's `fallback="0 0 0"` gives 3. */
  fallbackRuns?: number;
}

/**
 * A GRUB boot with Flatcar's fallback: `gptprio.next`, and when the picked slot fails to load,
 * the default entry runs again (calling `gptprio.next` again, using up another try), up to
 * `fallbackRuns` more times. `written` is true if any run wrote the table.
 */
export function grubBoot<E extends SlotEntry>(entries: readonly E[], options: GrubBootOptions = {}): BootDecision<E> {
  const { typeGuid = FLATCAR_USR_TYPE, canLoad = () => true, fallbackRuns = 3 } = options;
  if (!Number.isInteger(fallbackRuns) || fallbackRuns < 0) throw new RangeError(`fallbackRuns must be an integer >= 0, got ${fallbackRuns}`);
  let table = copy(entries);
  let written = false;
  const failed: number[] = [];
  for (let run = 0; run <= fallbackRuns; run++) {
    const d = grubNext(table, typeGuid);
    table = d.entries;
    written ||= d.written;
    if (!d.bootable) return { ...d, written, failed };
    if (canLoad(d.index)) return { ...d, written, failed };
    failed.push(d.index);
  }
  return { bootable: false, reason: 'boot failed', entries: table, written, failed };
}

export interface VbootOptions {
  /** Kernel-like types; default the ChromeOS kernel type (newer vboot adds Android vbmeta). */
  typeGuids?: readonly string[];
  /** Whether a candidate loads and verifies; default always. */
  canLoad?: (index: number) => boolean;
  /** `VB2_CONTEXT_NOFAIL_BOOT`: the booted kernel's try is not used up. */
  noFailBoot?: boolean;
}

/**
 * One vboot boot. Candidates (kernel type, `successful || tries > 0`, priority > 0) are tried in
 * `GptNextKernelEntry` order: highest priority first, equal priorities by increasing index. A
 * candidate that fails to load is marked BAD (tries = 0, priority = 0) unless successful = 1. The
 * one that boots: successful = 1, no change; otherwise (unless `noFailBoot`) TRY: tries > 1 gives
 * tries - 1, the last try gives tries = 0 and priority = 0, and this boot still uses it.
 * Nothing loads: not bootable (recovery). `written` is true when any bit changed.
 */
export function vbootNext<E extends SlotEntry>(entries: readonly E[], options: VbootOptions = {}): BootDecision<E> {
  const { typeGuids = [CHROMEOS_KERNEL_TYPE], canLoad = () => true, noFailBoot = false } = options;
  const table = copy(entries);
  const candidates = table
    .filter((e) => typeGuids.some((t) => sameGuid(e.typeGuid, t)))
    .filter((e) => {
      const { priority, tries, successful } = getSlotBits(e.attributes);
      return priority > 0 && (tries > 0 || successful);
    })
    .sort((a, b) => getSlotBits(b.attributes).priority - getSlotBits(a.attributes).priority || a.index - b.index);
  let written = false;
  const failed: number[] = [];
  const markBad = (e: E) => {
    if (getSlotBits(e.attributes).successful) return;
    const next = setSlotBits(e.attributes, { tries: 0, priority: 0 });
    if (next !== e.attributes) written = true;
    e.attributes = next;
  };
  for (const e of candidates) {
    if (!canLoad(e.index)) {
      markBad(e);
      failed.push(e.index);
      continue;
    }
    const { tries, successful } = getSlotBits(e.attributes);
    if (!successful && !noFailBoot) {
      if (tries > 1) {
        e.attributes = setSlotBits(e.attributes, { tries: tries - 1 });
        written = true;
      } else {
        markBad(e);
      }
    }
    return { bootable: true, index: e.index, uniqueGuid: e.uniqueGuid?.toLowerCase(), entries: table, written, failed };
  }
  return { bootable: false, reason: 'no valid kernel', entries: table, written, failed };
}

/** Which copy of the GPT GRUB's strict reader (`grub_gpt_read`, notes §2.1 step 2) ends up using. */
export interface GrubGptRead {
  /** 'primary' or 'backup' when the read succeeds; undefined when GRUB fails (Flatcar aborts the boot). */
  source: 'primary' | 'backup' | undefined;
  /** Why a copy was rejected, one line each (e.g. "backup GPT out of sync"). */
  notes: string[];
}

/** The header fields GRUB's `grub_gpt_header_equal`-style check compares between the copies. */
const GRUB_EQUAL_FIELDS = ['headerSize', 'firstUsableLba', 'lastUsableLba', 'entryCount', 'entrySize', 'entriesCrc32', 'diskGuid'] as const;

interface GrubCopyView {
  header: { headerSize: number; myLba: number; alternateLba: number; entryCount: number; entrySize: number } & Record<(typeof GRUB_EQUAL_FIELDS)[number], unknown>;
  entriesBytes: Uint8Array | undefined;
  valid: boolean;
}

/**
 * GRUB gptprio's reading of a table that readGpt has decoded: the primary is used when its header
 * and entries are valid; a CRC-valid primary header makes the backup usable only if the backup
 * header "equals" it (shared fields, entries CRC, crossed LBAs) and, when the primary entries are
 * valid too, the backup entries are byte-identical. A header is invalid to GRUB when HeaderSize is
 * not 92 (GRUB checks the CRC over 92 bytes) or the entry array is under 16 KiB. So a torn write
 * that leaves a CRC-valid primary header next to entries it does not describe and a backup that
 * disagrees (states S4, S5) fails, where vboot and sgdisk fall back to the backup.
 * Takes the `primary` and `backup` of a GptReadResult (structurally, to keep this module free of
 * the codec).
 */
export function grubReadGpt(read: { primary: { header: unknown; entriesBytes: Uint8Array | undefined; valid: boolean }; backup: { header: unknown; entriesBytes: Uint8Array | undefined; valid: boolean } }): GrubGptRead {
  const notes: string[] = [];
  const grubHeaderOk = (c: { header: unknown }): boolean => {
    const h = c.header as GrubCopyView['header'] | undefined;
    return h !== undefined && h.headerSize === 92 && h.entryCount * h.entrySize >= 16384;
  };
  const p = read.primary as GrubCopyView, b = read.backup as GrubCopyView;
  const pHeader = grubHeaderOk(p);
  const pEntries = pHeader && p.valid;
  let bOk = grubHeaderOk(b) && b.valid;
  if (bOk && pHeader) {
    const same = GRUB_EQUAL_FIELDS.every((f) => p.header[f] === b.header[f]) && p.header.myLba === b.header.alternateLba && p.header.alternateLba === b.header.myLba;
    if (!same) {
      notes.push('backup GPT out of sync (header)');
      bOk = false;
    } else if (pEntries && !sameBytes(p.entriesBytes, b.entriesBytes)) {
      notes.push('backup GPT out of sync (entries)');
      bOk = false;
    }
  }
  if (!pHeader) notes.push('primary GPT header invalid');
  else if (!pEntries) notes.push('primary GPT entries invalid');
  return { source: pEntries ? 'primary' : bOk ? 'backup' : undefined, notes };
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
