import {
  CHROMEOS_KERNEL_TYPE, FLATCAR_USR_TYPE, FastPatchError, PARTITION_TYPES, changeSlots, createFlatcarDisk, findSlot, formatSlotBits, getSlotBits, grubNext, isBootable, repairGpt,
  markGood, prioritize, readDiskGpt, setNext, usableEntries, vbootNext, type BootDecision, type GptEntry,
} from '../index.js';
import { print, printJson } from './output.js';

/** Options every `gpt` subcommand takes. */
export interface GptOptions {
  sectorSize?: number;
  type?: 'usr' | 'chromeos-kernel';
  json?: boolean;
}

const typeOf = (o: GptOptions) => (o.type === 'chromeos-kernel' ? CHROMEOS_KERNEL_TYPE : FLATCAR_USR_TYPE);
const diskOptions = (o: GptOptions) => (o.sectorSize !== undefined ? { sectorSize: o.sectorSize } : {});
const typeNames = new Map<string, string>(Object.entries(PARTITION_TYPES).map(([name, guid]) => [guid, name]));

function describeBoot(d: BootDecision): string {
  return d.bootable ? `partition ${d.index}${d.written ? ' (and writes its tries)' : ''}` : `nothing: ${d.reason}`;
}

/** `gpt show`: partitions, slot bits, and what each bootloader model would boot next. */
export async function show(path: string, o: GptOptions): Promise<void> {
  const result = await readDiskGpt(path, diskOptions(o));
  const entries = result.table ? result.table.entries.filter((e) => e.typeGuid !== PARTITION_TYPES.UNUSED) : [];
  const type = typeOf(o);
  const grub = grubNext(entries, FLATCAR_USR_TYPE);
  const vboot = vbootNext(entries);
  if (o.json) {
    return printJson({
      sectorSize: result.sectorSize,
      sectors: result.diskSectors,
      source: result.source ?? null,
      problems: result.problems,
      partitions: entries.map((e) => ({ ...e, attributes: `0x${e.attributes.toString(16).padStart(16, '0')}`, slot: e.typeGuid === type ? getSlotBits(e.attributes) : null })),
      next: { grub: grub.bootable ? grub.index : null, vboot: vboot.bootable ? vboot.index : null },
    });
  }
  print(`${path}: ${result.diskSectors} sectors of ${result.sectorSize} bytes; GPT read from the ${result.source ?? 'nowhere (no valid copy)'}`);
  for (const p of result.problems) print(`  ${p.severity} (${p.place}): ${p.message}`);
  for (const e of entries) {
    const slot = e.typeGuid === type ? `  ${formatSlotBits(e.attributes)}${isBootable(e.attributes) ? ' bootable' : ''}` : '';
    print(`  ${String(e.index).padStart(3)} ${e.label.padEnd(12)} ${(typeNames.get(e.typeGuid) ?? e.typeGuid).padEnd(16)} LBA ${e.firstLba}-${e.lastLba}${slot}`);
  }
  print(`next boot: GRUB gptprio would boot ${describeBoot(grub)}; vboot would boot ${describeBoot(vboot)}`);
}

async function change(path: string, o: GptOptions & { running?: string }, what: string, fn: (entries: GptEntry[]) => GptEntry[]): Promise<void> {
  const typeGuid = typeOf(o);
  // The running slot, named like any slot, must stay a fallback through the change.
  const running = o.running === undefined ? undefined : findSlot(usableEntries(await readDiskGpt(path, diskOptions(o)), path), o.running).index;
  const result = await changeSlots(path, fn, { ...diskOptions(o), typeGuid, ...(running !== undefined ? { running } : {}) });
  if (o.json) return printJson({ action: what, partitions: result.after.filter((e) => e.typeGuid === typeGuid).map((e) => ({ index: e.index, label: e.label, ...getSlotBits(e.attributes) })), sectorsWritten: result.phases.flat().length });
  for (const e of result.after.filter((x) => x.typeGuid === typeGuid)) {
    const old = result.before.find((b) => b.index === e.index)!;
    print(`  ${String(e.index).padStart(3)} ${e.label.padEnd(12)} ${formatSlotBits(old.attributes)} -> ${formatSlotBits(e.attributes)}`);
  }
  print(`${what}: ${result.phases.flat().length} sectors written in ${result.phases.length} flushed phases (backup first, then the primary header, then its entries)`);
}

export function setNextCommand(path: string, o: GptOptions & { slot: string; running?: string; tries?: number }): Promise<void> {
  return change(path, o, 'set-next', (entries) => setNext(entries, findSlot(entries, o.slot).index, { typeGuid: typeOf(o), ...(o.tries !== undefined ? { tries: o.tries } : {}) }) as GptEntry[]);
}

export function markGoodCommand(path: string, o: GptOptions & { slot: string }): Promise<void> {
  return change(path, o, 'mark-good', (entries) => markGood(entries, findSlot(entries, o.slot).index, { typeGuid: typeOf(o) }) as GptEntry[]);
}

/** `gpt rollback`: the other, known-good slot boots next. */
export function rollbackCommand(path: string, o: GptOptions): Promise<void> {
  return change(path, o, 'rollback', (entries) => {
    const type = typeOf(o);
    const slots = entries.filter((e) => e.typeGuid === type);
    const next = grubNext(entries, type);
    const current = next.bootable ? next.index : slots.sort((a, b) => getSlotBits(b.attributes).priority - getSlotBits(a.attributes).priority)[0]?.index;
    const others = slots.filter((e) => e.index !== current);
    if (others.length !== 1) throw new FastPatchError('USAGE', `rollback needs exactly two slots of the slot type, found ${slots.length}`);
    const other = others[0]!;
    if (!getSlotBits(other.attributes).successful) {
      throw new FastPatchError('GPT_UNSAFE', `partition ${other.index} (${other.label}) has never booted successfully: rolling back to it could leave nothing bootable`);
    }
    return prioritize(entries, other.index, { typeGuid: type }) as GptEntry[];
  });
}

/** `gpt boot-next`: what the bootloader would boot, with the tries update it writes first. */
export async function bootNextCommand(path: string, o: GptOptions & { model?: 'grub' | 'vboot'; dryRun?: boolean }): Promise<void> {
  const model = o.model ?? 'grub';
  const decide = (entries: GptEntry[]) => (model === 'grub' ? grubNext(entries, typeOf(o)) : vbootNext(entries, { typeGuids: [typeOf(o)] }));
  const entries = usableEntries(await readDiskGpt(path, diskOptions(o)), path);
  const decision = decide(entries);
  if (!o.dryRun && decision.written) {
    await changeSlots(path, () => decision.entries as GptEntry[], { ...diskOptions(o), typeGuid: typeOf(o), allowUnbootable: true });
  }
  if (o.json) return printJson({ model, boots: decision.bootable ? decision.index : null, written: decision.written && !o.dryRun, reason: decision.bootable ? null : decision.reason });
  print(`${model}: boots ${describeBoot(decision)}${o.dryRun ? ' (dry run: nothing written)' : ''}`);
  if (!decision.bootable) throw new FastPatchError('GPT_UNSAFE', `${model} finds nothing bootable on ${path}: ${decision.reason}`);
}

/** `gpt repair`: rebuild a bad or disagreeing copy from the good one. */
export async function repairCommand(path: string, o: GptOptions & { moveBackup?: boolean }): Promise<void> {
  const result = await repairGpt(path, { ...diskOptions(o), moveBackup: o.moveBackup === true });
  if (o.json) return printJson(result);
  for (const p of result.problems) print(`  found: ${p}`);
  print(result.written > 0 ? `repaired: ${result.written} sectors written; both copies now agree` : 'nothing to repair: both copies are valid and agree');
}

/** `gpt create --layout flatcar`: a new disk for image builders and tests. */
export async function createCommand(path: string, o: GptOptions & { size?: number; force?: boolean; layout: string }): Promise<void> {
  if (o.layout !== 'flatcar') throw new FastPatchError('USAGE', `unknown layout "${o.layout}" (known: flatcar)`);
  const entries = await createFlatcarDisk(path, { ...diskOptions(o), ...(o.size !== undefined ? { size: o.size } : {}), force: o.force === true });
  if (o.json) return printJson(entries.map((e) => ({ ...e, attributes: `0x${e.attributes.toString(16).padStart(16, '0')}` })));
  for (const e of entries) print(`  ${String(e.index).padStart(3)} ${e.label.padEnd(12)} LBA ${e.firstLba}-${e.lastLba}`);
  print(`created ${path}: flatcar layout, USR-A good and booted, USR-B empty`);
}
