import { disableOptimizingCompiler, applyPayload, escapeText, FastPatchError, openPayload, slotForInstall, type SlotTarget } from '../index.js';
import { httpOptions, type HttpFlags } from './http-options.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, formatRate, print, printJson, progressLine } from './output.js';

/** `apply` and, with no target, `verify`. */
export async function run(payload: string, opts: { target?: string; slot?: string; source?: string; checkSource?: boolean; resume?: boolean; pubkey: string[]; json?: boolean; maxImageSize?: string } & HttpFlags): Promise<void> {
  disableOptimizingCompiler(); // flat peak memory on long runs (apply/optimizer.ts)
  const maxImageSize = opts.maxImageSize !== undefined ? parseByteSize(opts.maxImageSize, '--max-image-size') : undefined;
  const trustedKeys = await loadTrustedKeys(opts.pubkey);
  // --slot: the target is a whole GPT disk; the image goes into that slot's bytes (the first install).
  const slot = opts.slot !== undefined && opts.target !== undefined ? await slotForInstall(opts.target, opts.slot) : undefined;
  const progress = progressLine(opts.target ? `apply to ${opts.target}` : `verify ${payload}`);
  const result = await applyPayload(openPayload(payload, { http: httpOptions(opts) }), {
    trustedKeys,
    resume: opts.resume === true,
    onScanProgress: (bytes, total) => progress.update(bytes, total),
    ...(slot ? { target: slot.path, ...(slot.range ? { targetRange: slot.range } : {}) } : opts.target !== undefined ? { target: opts.target } : {}),
    ...(opts.source !== undefined ? { source: opts.source } : {}),
    checkSource: opts.checkSource === true,
    ...(maxImageSize !== undefined ? { maxImageSize } : {}),
    onProgress: (p) => progress.update(p.imageBytesDone, p.targetSize),
  }).catch((err: unknown) => { throw slot ? inSlot(err, slot) : err; });
  progress.done();
  if (slot) return printSlotResult(result, slot, opts);
  if (opts.json) return printJson({ ...result, target: opts.target ?? null, source: opts.source ?? null });
  const verb = opts.target ? `applied to ${opts.target}` : 'verified';
  print(`${verb}: release ${result.version}, ${formatBytes(result.targetSize)} image, ${result.operations} operations, ${formatBytes(result.payloadBytes)} payload in ${result.seconds.toFixed(2)} s (${formatRate(result.targetSize, result.seconds)})`);
  const sourceNote = result.sourceSize > 0 ? `, every source block read checked against ${opts.source}` : '';
  if (result.resumed) print(`resumed: ${result.resumed.operationsSkipped} operations (${formatBytes(result.resumed.bytesSkipped)}) were already on the target and checked; the rest fetched and written`);
  print(`signature by ${result.keyId}; every operation's data and output checked${sourceNote}; image hash ${result.targetHash} checked`);
}

/** Bytes, or a number with K, M, G or T (powers of 1024). Throws FastPatchError('USAGE'). */
function parseByteSize(value: string, name: string): number {
  const m = /^(\d+)([KMGT]?)$/i.exec(value.trim());
  const n = m ? Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new FastPatchError('USAGE', `${name} expects bytes, or a number with K, M, G or T (e.g. 64G), got "${value}"`);
  return n;
}

type ApplyFlags = Parameters<typeof run>[1];

/** A target that is too small is the slot: say so, and how to get a larger one. */
function inSlot(err: unknown, slot: SlotTarget): unknown {
  if (!(err instanceof FastPatchError) || err.code !== 'TARGET_TOO_SMALL') return err;
  const name = escapeText(slot.slot.label) || `partition ${slot.slot.index}`;
  return new FastPatchError('TARGET_TOO_SMALL', `slot ${name} (${slot.slotRange.length} bytes) is too small for this image: ${err.message}; a larger disk has larger slots (\`fastpatch gpt create DISK --size 8G\`)`, { cause: err });
}

function printSlotResult(result: Awaited<ReturnType<typeof applyPayload>>, slot: SlotTarget, opts: ApplyFlags): void {
  const name = escapeText(slot.slot.label) || `partition ${slot.slot.index}`;
  const next = slot.bootsNext ? escapeText(slot.bootsNext.label) || `partition ${slot.bootsNext.index}` : undefined;
  if (opts.json) {
    return printJson({ ...result, target: opts.target ?? null, source: opts.source ?? null, slot: { index: slot.slot.index, label: slot.slot.label, written: slot.description, bootsNext: slot.bootsNext?.index ?? null } });
  }
  print(`installed release ${result.version} into slot ${name} of ${opts.target} (${slot.description}): ${formatBytes(result.targetSize)} image, ${result.operations} operations in ${result.seconds.toFixed(2)} s (${formatRate(result.targetSize, result.seconds)})`);
  print(`signature by ${result.keyId}; every operation's data and output checked; image hash ${result.targetHash} checked`);
  if (next === undefined) print(`no slot boots next: \`fastpatch gpt set-next ${opts.target} --slot ${name}\` makes ${name} boot next`);
  else if (slot.bootsNext!.index === slot.slot.index) print(`${name} boots next (GRUB model; slot bits unchanged); later releases: \`fastpatch update PAYLOAD --disk ${opts.target}\``);
  else print(`${next} boots next, not ${name} (slot bits unchanged): \`fastpatch gpt set-next ${opts.target} --slot ${name}\` tries it once`);
}
