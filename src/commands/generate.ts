import { FastPatchError, checkReleaseVersion, generateFullPayload } from '../index.js';
import { loadSigningKeys } from './keys.js';
import { formatBytes, formatRate, print, printJson, printOperationStats, progressLine } from './output.js';

export async function run(opts: { target: string; key: string[]; version: string; out: string; level: number; json?: boolean }): Promise<void> {
  if (opts.level < 1 || opts.level > 9) throw new FastPatchError('USAGE', `--level must be 1..9, got ${opts.level}`);
  try {
    checkReleaseVersion(opts.version);
  } catch (err) {
    throw new FastPatchError('USAGE', `--version: ${(err as Error).message}`);
  }
  const keys = await loadSigningKeys(opts.key);
  const progress = progressLine(`generate ${opts.out}`);
  const result = await generateFullPayload({
    target: opts.target,
    keys,
    version: opts.version,
    out: opts.out,
    level: opts.level,
    onProgress: (p) => progress.update(p.bytesRead, p.targetSize),
  });
  progress.done();
  if (opts.json) return printJson(result);
  const pct = result.targetSize > 0 ? ((result.payload.totalSize / result.targetSize) * 100).toFixed(1) : '0';
  print(`wrote ${opts.out}: version ${result.version}, ${formatBytes(result.payload.totalSize)} (${pct}% of the ${formatBytes(result.targetSize)} image) in ${result.seconds.toFixed(2)} s (${formatRate(result.targetSize, result.seconds)})`);
  printOperationStats(result.operations);
  print(`  manifest ${formatBytes(result.payload.manifestSize)}, signed by ${result.keyIds.join(', ')}`);
}
