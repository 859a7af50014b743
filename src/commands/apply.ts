import { applyPayload } from '../apply/applier.js';
import { FastPatchError } from '../errors.js';
import { openPayload } from '../io/payload-source.js';
import { tuneRuntime } from '../runtime/tune.js';
import { escapeText } from '../text.js';
import { installSlot, type InstallResult } from '../update/install.js';
import { httpOptions, type HttpFlags } from './http-options.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, formatRate, print, printJson, progressLine } from './output.js';

/** `apply` and, with no target, `verify`. */
export async function run(payload: string, opts: { target?: string; slot?: string; source?: string; checkSource?: boolean; resume?: boolean; pubkey: string[]; json?: boolean; maxImageSize?: number; status?: string } & HttpFlags): Promise<void> {
  tuneRuntime({ collections: true, optimizingCompiler: false }); // flat peak memory on long runs (runtime/tune.ts)
  const trustedKeys = await loadTrustedKeys(opts.pubkey);
  if (opts.status !== undefined && opts.slot === undefined) throw new FastPatchError('USAGE', '--status goes with --slot: it is where a first install records the release it wrote');
  const progress = progressLine(opts.target ? `apply to ${opts.target}` : `verify ${payload}`);
  // A resume first reads the target through: its own line, so the apply's does not run twice.
  let scan: ReturnType<typeof progressLine> | undefined;
  const common = {
    trustedKeys,
    resume: opts.resume === true,
    onScanProgress: (bytes: number, total: number) => {
      scan ??= progressLine(`checking what ${opts.target} already holds`);
      scan.update(bytes, total);
      if (bytes >= total) scan.done();
    },
    ...(opts.maxImageSize !== undefined ? { maxImageSize: opts.maxImageSize } : {}),
    onProgress: (p: { imageBytesDone: number; targetSize: number }) => progress.update(p.imageBytesDone, p.targetSize),
  };
  const input = openPayload(payload, { http: httpOptions(opts) });
  if (opts.slot !== undefined && opts.target !== undefined) {
    // --slot: the target is a whole GPT disk; the image goes into that slot (the first install).
    if (opts.source !== undefined) throw new FastPatchError('USAGE', '--slot installs a full payload onto a new disk; a delta goes through `fastpatch update`');
    const installed = await installSlot(input, { ...common, disk: opts.target, slot: opts.slot, ...(opts.status !== undefined ? { statusPath: opts.status } : {}) }).catch((err: unknown) => {
      throw withNextStep(err, opts);
    });
    progress.done();
    return printInstall(installed, opts);
  }
  const result = await applyPayload(input, {
    ...common,
    ...(opts.target !== undefined ? { target: opts.target } : {}),
    ...(opts.source !== undefined ? { source: opts.source } : {}),
    checkSource: opts.checkSource === true,
  }).catch((err: unknown) => {
    throw withNextStep(err, opts);
  });
  progress.done();
  if (opts.json) return printJson({ ...result, target: opts.target ?? null, source: opts.source ?? null });
  const verb = opts.target ? `applied to ${opts.target}` : 'verified';
  print(`${verb}: release ${result.version}, ${formatBytes(result.targetSize)} image, ${result.operations} operations, ${formatBytes(result.payloadBytes)} payload in ${result.seconds.toFixed(2)} s (${formatRate(result.targetSize, result.seconds)})`);
  const sourceNote = result.sourceSize > 0 ? `, every source block read checked against ${opts.source}` : '';
  if (result.resumed) print(`resumed: ${result.resumed.operationsSkipped} operations (${formatBytes(result.resumed.bytesSkipped)}) were already on the target and checked; the rest fetched and written`);
  print(`signature by ${result.keyId}; every operation's data and output checked${sourceNote}; image hash ${result.targetHash} checked`);
}

type ApplyFlags = Parameters<typeof run>[1];

/** A refusal that left part of an image on the target, with what to do about it. */
function withNextStep(err: unknown, opts: ApplyFlags): unknown {
  if (!(err instanceof FastPatchError) || opts.target === undefined) return err;
  if (err.code === 'TRUNCATED_PAYLOAD') {
    return new FastPatchError(err.code, `${err.message}; ${opts.target} keeps what arrived: once the whole payload can be read, run the same command again with --resume`, { cause: err });
  }
  if (err.code === 'SOURCE_MISMATCH' && /^operation \d+/.test(err.message) && !opts.checkSource) {
    return new FastPatchError(err.code, `${err.message}; the operations before it were written to ${opts.target}: with --check-source the whole source is checked before anything is written`, { cause: err });
  }
  return err;
}

function printInstall(installed: InstallResult, opts: ApplyFlags): void {
  const { apply: result, slot, bootsNext } = installed;
  const name = escapeText(slot.label) || `partition ${slot.index}`;
  const next = bootsNext ? escapeText(bootsNext.label) || `partition ${bootsNext.index}` : undefined;
  if (opts.json) return printJson({ ...result, target: opts.target ?? null, source: null, slot: { index: slot.index, label: slot.label, written: slot.written, bootsNext: bootsNext?.index ?? null }, status: installed.statusPath });
  print(`installed release ${result.version} into slot ${name} of ${opts.target} (${slot.written}): ${formatBytes(result.targetSize)} image, ${result.operations} operations in ${result.seconds.toFixed(2)} s (${formatRate(result.targetSize, result.seconds)})`);
  print(`signature by ${result.keyId}; every operation's data and output checked; image hash ${result.targetHash} checked`);
  print(`recorded release ${result.version} for slot ${name} in ${installed.statusPath}`);
  if (next === undefined) print(`no slot boots next: \`fastpatch gpt set-next ${opts.target} --slot ${name}\` makes ${name} boot next`);
  else if (bootsNext!.index === slot.index) print(`${name} boots next (GRUB model; slot bits unchanged); later releases: \`fastpatch update PAYLOAD --disk ${opts.target}\``);
  else print(`${next} boots next, not ${name} (slot bits unchanged): \`fastpatch gpt set-next ${opts.target} --slot ${name}\` tries it once`);
}
