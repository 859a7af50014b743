import { changeSlots, createFlatcarDisk, findSlot, repairGpt, readDiskGpt, usableEntries } from '../disk/transaction.js';
import { FastPatchError } from '../errors.js';
import { CHROMEOS_KERNEL_TYPE, FLATCAR_USR_TYPE, formatSlotBits, getSlotBits, isBootable } from '../gpt/attributes.js';
import { grubNext, vbootNext, type BootDecision } from '../gpt/boot-model.js';
import type { GptEntry } from '../gpt/entries.js';
import { PARTITION_TYPES } from '../gpt/guid.js';
import { markGood, setNext } from '../gpt/prioritize.js';
import type { GptReadResult } from '../gpt/table.js';
import { escapeText } from '../text.js';
import { RUNNING_HOW } from '../update/running.js';
import { nextBoot, rollbackSlots, slotName, slotToMarkGood } from '../update/slot-policy.js';
import { formatBytes, print, printJson } from './output.js';

/** Options every `gpt` subcommand takes. */
export interface GptOptions {
  sectorSize?: number;
  type?: 'usr' | 'chromeos-kernel';
  json?: boolean;
}

const typeOf = (o: GptOptions) => (o.type === 'chromeos-kernel' ? CHROMEOS_KERNEL_TYPE : FLATCAR_USR_TYPE);
const diskOptions = (o: GptOptions) => (o.sectorSize !== undefined ? { sectorSize: o.sectorSize } : {});
const typeNames = new Map<string, string>(Object.entries(PARTITION_TYPES).map(([name, guid]) => [guid, name]));
const nameOf = slotName;
/** What boots next by the model of the slot type's bootloader (GRUB for /usr, vboot for ChromeOS kernels). */
const nextOf = (entries: GptEntry[], o: GptOptions): BootDecision => nextBoot(entries, typeOf(o));

function describeBoot(d: BootDecision, entries: readonly GptEntry[]): string {
  if (!d.bootable) return `nothing: ${d.reason}`;
  const e = entries.find((x) => x.index === d.index);
  return `partition ${d.index}${e?.label ? ` (${escapeText(e.label)})` : ''}${d.written ? ' (and writes its tries)' : ''}`;
}

/** "USR-B boots next" for the slots after a change, by the slot type's bootloader model. */
function bootsNextLine(entries: GptEntry[], o: GptOptions): string {
  const next = nextOf(entries, o);
  if (!next.bootable) return `nothing boots next: ${next.reason}`;
  const e = entries.find((x) => x.index === next.index)!;
  const bits = getSlotBits(e.attributes);
  return `${nameOf(e)} boots next${bits.successful ? '' : ` (on trial: ${bits.tries} ${bits.tries === 1 ? 'try' : 'tries'} left)`}`;
}

/** `gpt show`: partitions, slot bits, and what each bootloader model would boot next. */
export async function show(path: string, o: GptOptions): Promise<void> {
  const result = await readDiskGpt(path, diskOptions(o));
  const entries = result.table ? result.table.entries.filter((e) => e.typeGuid !== PARTITION_TYPES.UNUSED) : [];
  const type = typeOf(o);
  const grub = grubNext(entries, FLATCAR_USR_TYPE);
  const vboot = vbootNext(entries);
  if (o.json) {
    printJson({
      sectorSize: result.sectorSize,
      sectors: result.diskSectors,
      source: result.source ?? null,
      problems: result.problems,
      partitions: entries.map((e) => ({ ...e, attributes: `0x${e.attributes.toString(16).padStart(16, '0')}`, slot: e.typeGuid === type ? getSlotBits(e.attributes) : null })),
      next: { grub: grub.bootable ? grub.index : null, vboot: vboot.bootable ? vboot.index : null },
    });
    return noGpt(path, result);
  }
  if (!result.table) {
    for (const p of result.problems) print(`  ${p.severity} (${p.place}): ${escapeText(p.message)}`);
    return noGpt(path, result);
  }
  print(`${escapeText(path)}: ${result.diskSectors} sectors of ${result.sectorSize} bytes; GPT read from the ${result.source}`);
  for (const p of result.problems) print(`  ${p.severity} (${p.place}): ${escapeText(p.message)}`);
  for (const e of entries) {
    const slot = e.typeGuid === type ? `  ${formatSlotBits(e.attributes)}${isBootable(e.attributes) ? ' bootable' : ''}` : '';
    const size = formatBytes((e.lastLba - e.firstLba + 1) * result.sectorSize);
    print(`  ${String(e.index).padStart(3)} ${escapeText(e.label).padEnd(12)} ${(typeNames.get(e.typeGuid) ?? e.typeGuid).padEnd(16)} LBA ${e.firstLba}-${e.lastLba} (${size})${slot}`);
  }
  print(`next boot: GRUB gptprio would boot ${describeBoot(grub, entries)}; vboot would boot ${describeBoot(vboot, entries)}`);
}

/** A disk with no valid GPT copy is an error (exit 9) that says how to make one. */
function noGpt(path: string, result: GptReadResult): void {
  if (result.table) return;
  // A table made for the other sector size is there and whole: say so, rather than offer to wipe it.
  const other = result.problems.map((p) => /made for (\d+)-byte sectors/.exec(p.message)?.[1]).find((n) => n !== undefined);
  if (other !== undefined) {
    throw new FastPatchError('GPT_CORRUPT', `${path} holds a GPT made for ${other}-byte sectors, not ${result.sectorSize}: run again with --sector-size ${other} (or without --sector-size)`);
  }
  const seen = result.problems.some((p) => /signature|EFI PART/i.test(p.message)) || result.problems.length === 0 ? 'no GPT' : 'no valid GPT (neither copy)';
  throw new FastPatchError('GPT_CORRUPT', `${path} holds ${seen}: make one with \`fastpatch gpt create ${path} --force\` (it replaces what the disk holds)${result.problems.length > 0 ? '; --json lists what was found' : ''}`);
}

/** Prints the slot bits before -> after and the sectors written, then which slot boots next. */
function report(what: string, result: Awaited<ReturnType<typeof changeSlots>>, o: GptOptions, extra: Record<string, unknown> = {}, note?: string): void {
  const typeGuid = typeOf(o);
  const written = result.phases.flat().length;
  const next = nextOf(result.after.map((e) => ({ ...e })), o);
  if (o.json) {
    return printJson({
      action: what, ...extra,
      partitions: result.after.filter((e) => e.typeGuid === typeGuid).map((e) => ({ index: e.index, label: e.label, ...getSlotBits(e.attributes) })),
      sectorsWritten: written,
      next: next.bootable ? next.index : null,
    });
  }
  for (const e of result.after.filter((x) => x.typeGuid === typeGuid)) {
    const old = result.before.find((b) => b.index === e.index)!;
    print(`  ${String(e.index).padStart(3)} ${nameOf(e).padEnd(12)} ${formatSlotBits(old.attributes)} -> ${formatSlotBits(e.attributes)}`);
  }
  if (note) print(note);
  print(written > 0
    ? `${what}: ${written} sectors written in ${result.phases.length} flushed phases (backup first, then the primary header, then its entries); ${bootsNextLine(result.after, o)}`
    : `${what}: nothing to change; ${bootsNextLine(result.after, o)}`);
}

async function change(path: string, o: GptOptions & { running?: string }, what: string, fn: (entries: GptEntry[]) => GptEntry[], note?: () => { text: string; json: Record<string, unknown> }): Promise<void> {
  const typeGuid = typeOf(o);
  // The running slot, named like any slot, must stay a fallback through the change.
  const running = o.running === undefined ? undefined : findSlot(usableEntries(await readDiskGpt(path, diskOptions(o)), path), o.running).index;
  const result = await changeSlots(path, fn, { ...diskOptions(o), typeGuid, ...(running !== undefined ? { running } : {}) });
  const said = note?.();
  report(what, result, o, said?.json ?? {}, said?.text);
}

export function setNextCommand(path: string, o: GptOptions & { slot: string; running?: string; tries?: number }): Promise<void> {
  return change(path, o, 'set-next', (entries) => setNext(entries, findSlot(entries, o.slot).index, { typeGuid: typeOf(o), ...(o.tries !== undefined ? { tries: o.tries } : {}) }));
}

/**
 * `gpt mark-good`: the slot booted fine. Without `--slot`, the slot running now, as the library's
 * slot policy finds it (update/slot-policy.ts says when it refuses).
 */
export async function markGoodCommand(path: string, o: GptOptions & { slot?: string }): Promise<void> {
  let slot = o.slot;
  let how = 'as named';
  if (slot === undefined) {
    const found = await slotToMarkGood(path, { typeGuid: typeOf(o), ...diskOptions(o) });
    slot = String(found.slot.index);
    how = found.how;
  }
  let marked: GptEntry | undefined;
  return change(path, o, 'mark-good', (entries) => {
    marked = findSlot(entries, slot);
    return markGood(entries, marked.index, { typeGuid: typeOf(o) });
  }, () => ({ text: `marked ${nameOf(marked!)} good (${how})`, json: { marked: marked!.index, label: marked!.label, how } }));
}

/** `gpt rollback`: the slot that is not running boots next (update/slot-policy.ts, rollbackSlots). */
export async function rollbackCommand(path: string, o: GptOptions & { running?: string }): Promise<void> {
  const { running, other, result } = await rollbackSlots(path, { typeGuid: typeOf(o), ...diskOptions(o), ...(o.running !== undefined ? { running: o.running } : {}) });
  report('rollback', result, o, { running: running.slot.index, how: running.how }, o.json ? undefined : `running: ${nameOf(running.slot)} (${RUNNING_HOW[running.how]}); rolling back to ${nameOf(other)}`);
}

type ModelOptions = GptOptions & { model?: 'grub' | 'vboot' };
const decide = (entries: GptEntry[], o: ModelOptions) => ((o.model ?? 'grub') === 'grub' ? grubNext(entries, typeOf(o)) : vbootNext(entries, { typeGuids: [typeOf(o)] }));

/** `gpt next`: which slot the bootloader would boot next. A query: writes nothing. */
export async function nextCommand(path: string, o: ModelOptions): Promise<void> {
  const model = o.model ?? 'grub';
  const entries = usableEntries(await readDiskGpt(path, diskOptions(o)), path);
  const decision = decide(entries, o);
  const label = decision.bootable ? entries.find((e) => e.index === decision.index)?.label ?? null : null;
  if (o.json) {
    printJson({ model, boots: decision.bootable ? decision.index : null, label, written: false, usesTry: decision.written, reason: decision.bootable ? null : decision.reason });
  } else {
    const tries = decision.written ? ', using one of its tries' : '';
    print(`${model}: would boot ${describeBoot({ ...decision, written: false }, entries)}${decision.bootable ? tries : ''}; nothing written (\`fastpatch gpt boot\` writes what the bootloader writes)`);
  }
  if (!decision.bootable) throw new FastPatchError('GPT_UNSAFE', `${model} finds nothing bootable on ${path}: ${decision.reason}`);
}

/**
 * `gpt boot`: runs the bootloader model as a boot would, writing its tries update (a slot on
 * trial uses one try). `boot-next`, its old name, is kept as an alias that says so.
 */
export async function bootCommand(path: string, o: ModelOptions & { dryRun?: boolean; deprecatedName?: string }): Promise<void> {
  if (o.deprecatedName) process.stderr.write(`fastpatch: note: \`gpt ${o.deprecatedName}\` is deprecated: use \`gpt boot\` (writes the tries update, as a boot does) or \`gpt next\` (a query, writes nothing)\n`);
  const model = o.model ?? 'grub';
  const entries = usableEntries(await readDiskGpt(path, diskOptions(o)), path);
  const decision = decide(entries, o);
  if (!o.dryRun && decision.written) {
    await changeSlots(path, () => decision.entries, { ...diskOptions(o), typeGuid: typeOf(o), allowUnbootable: true });
  }
  const label = decision.bootable ? entries.find((e) => e.index === decision.index)?.label ?? null : null;
  if (o.json) return printJson({ model, boots: decision.bootable ? decision.index : null, label, written: decision.written && !o.dryRun, reason: decision.bootable ? null : decision.reason });
  print(`${model}: boots ${describeBoot(decision, entries)}${o.dryRun ? ' (dry run: nothing written)' : ''}`);
  // What the boot changed: a slot on trial uses one of its tries.
  const before = decision.bootable ? entries.find((e) => e.index === decision.index) : undefined;
  const after = decision.bootable ? (decision.entries)?.find((e) => e.index === decision.index) : undefined;
  if (before && after && decision.written) print(`  ${String(after.index).padStart(3)} ${nameOf(after).padEnd(12)} ${formatSlotBits(before.attributes)} -> ${formatSlotBits(after.attributes)}${o.dryRun ? ' (not written)' : ''}`);
  if (!decision.bootable) throw new FastPatchError('GPT_UNSAFE', `${model} finds nothing bootable on ${path}: ${decision.reason}`);
}

/** `gpt repair`: rebuild a bad or disagreeing copy from the good one. */
export async function repairCommand(path: string, o: GptOptions & { moveBackup?: boolean }): Promise<void> {
  const result = await repairGpt(path, { ...diskOptions(o), moveBackup: o.moveBackup === true });
  if (o.json) return printJson({ problems: result.problems, written: result.written });
  for (const p of result.problems) print(`  found: ${escapeText(p)}`);
  print(result.written > 0 ? `repaired: ${result.written} sectors written; both copies now agree` : 'nothing to repair: both copies are valid and agree');
}

/** `gpt create --layout flatcar`: a new disk for image builders and tests. */
export async function createCommand(path: string, o: GptOptions & { size?: number; force?: boolean; layout: string }): Promise<void> {
  if (o.layout !== 'flatcar') throw new FastPatchError('USAGE', `unknown layout "${o.layout}" (known: flatcar)`);
  const entries = await createFlatcarDisk(path, { ...diskOptions(o), ...(o.size !== undefined ? { size: o.size } : {}), force: o.force === true });
  const sectorSize = (await readDiskGpt(path, diskOptions(o))).sectorSize;
  const bytes = (e: GptEntry) => (e.lastLba - e.firstLba + 1) * sectorSize;
  if (o.json) return printJson(entries.map((e) => ({ ...e, attributes: `0x${e.attributes.toString(16).padStart(16, '0')}`, bytes: bytes(e) })));
  for (const e of entries) print(`  ${String(e.index).padStart(3)} ${nameOf(e).padEnd(12)} LBA ${e.firstLba}-${e.lastLba} (${formatBytes(bytes(e))})`);
  const usr = entries.find((e) => e.label === 'USR-A');
  const slot = usr ? bytes(usr) : 0;
  print(`created ${escapeText(path)}: flatcar layout, USR-A good and booted, USR-B empty; each USR slot holds ${formatBytes(slot)}, the largest image it takes`);
  if (slot < 1024 ** 3) print('  note: a Flatcar /usr image needs a 1 GiB slot (--size 5G or more; --size 8G gives Flatcar\'s own 2 GiB slots); this disk suits tests and demos');
  print(`next: \`fastpatch apply PAYLOAD --target ${escapeText(path)} --slot USR-A --pubkey KEY\` installs the first release`);
}
