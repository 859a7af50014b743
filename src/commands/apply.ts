import { disableOptimizingCompiler, applyPayload, FastPatchError, openPayload } from '../index.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, formatRate, print, printJson, progressLine } from './output.js';

/** `apply` and, with no target, `verify`. */
export async function run(payload: string, opts: { target?: string; source?: string; checkSource?: boolean; resume?: boolean; pubkey: string[]; json?: boolean; maxImageSize?: string }): Promise<void> {
  disableOptimizingCompiler(); // flat peak memory on long runs (apply/optimizer.ts)
  const maxImageSize = opts.maxImageSize !== undefined ? parseByteSize(opts.maxImageSize, '--max-image-size') : undefined;
  const trustedKeys = await loadTrustedKeys(opts.pubkey);
  const progress = progressLine(opts.target ? `apply to ${opts.target}` : `verify ${payload}`);
  const result = await applyPayload(openPayload(payload), {
    trustedKeys,
    resume: opts.resume === true,
    onScanProgress: (bytes, total) => progress.update(bytes, total),
    ...(opts.target !== undefined ? { target: opts.target } : {}),
    ...(opts.source !== undefined ? { source: opts.source } : {}),
    checkSource: opts.checkSource === true,
    ...(maxImageSize !== undefined ? { maxImageSize } : {}),
    onProgress: (p) => progress.update(p.imageBytesDone, p.targetSize),
  });
  progress.done();
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
