import { FastPatchError } from '../errors.js';
import { checkReleaseVersion } from '../format/manifest.js';
import { generateDeltaPayload, type DeltaResult } from '../generate/delta.js';
import { DEFAULT_LEVELS, MAX_LEVELS, codecOf, generateFullPayload, type GenerateResult } from '../generate/generator.js';
import { tuneRuntime } from '../runtime/tune.js';
import { loadSigningKeys } from './keys.js';
import { formatBytes, formatRate, print, printJson, printOperationStats, progressLine } from './output.js';

export async function run(opts: { target: string; source?: string; key: string[]; version: string; sourceVersion?: string; out: string; force?: boolean; formatVersion: number; level?: number; quality: number; json?: boolean }): Promise<void> {
  // A delta's diff workers collect what each job lets go (runtime/tune.ts); a full payload has none.
  if (opts.source !== undefined) tuneRuntime({ collections: true });
  if (opts.formatVersion !== 1 && opts.formatVersion !== 2) throw new FastPatchError('USAGE', `--format-version must be 1 or 2, got ${opts.formatVersion}`);
  const codec = codecOf(opts.formatVersion);
  const level = opts.level ?? DEFAULT_LEVELS[codec];
  if (level < 1 || level > MAX_LEVELS[codec]) throw new FastPatchError('USAGE', `--level must be 1..${MAX_LEVELS[codec]} for ${codec} (format version ${opts.formatVersion}), got ${level}`);
  if (opts.source !== undefined && opts.level !== undefined) throw new FastPatchError('USAGE', '--level is for full payloads; a delta takes --quality');
  if (opts.quality < 1 || opts.quality > 11) throw new FastPatchError('USAGE', `--quality must be 1..11, got ${opts.quality}`);
  try {
    checkReleaseVersion(opts.version);
  } catch (err) {
    throw new FastPatchError('USAGE', `--version: ${(err as Error).message}`);
  }
  if (opts.sourceVersion !== undefined) {
    if (opts.source === undefined) throw new FastPatchError('USAGE', '--source-version needs --source (a delta)');
    try {
      checkReleaseVersion(opts.sourceVersion);
    } catch (err) {
      throw new FastPatchError('USAGE', `--source-version: ${(err as Error).message}`);
    }
  }
  const keys = await loadSigningKeys(opts.key);
  let result: GenerateResult | DeltaResult;
  if (opts.source !== undefined) {
    const phases = { source: 'read source', target: 'read target', encode: 'diff' };
    let phase = '';
    let progress = progressLine('');
    result = await generateDeltaPayload({
      source: opts.source,
      target: opts.target,
      keys,
      version: opts.version,
      ...(opts.sourceVersion !== undefined ? { sourceVersion: opts.sourceVersion } : {}),
      out: opts.out,
      force: opts.force === true,
      quality: opts.quality,
      formatVersion: opts.formatVersion,
      onProgress: (p) => {
        if (p.phase !== phase) {
          progress.done();
          phase = p.phase;
          progress = progressLine(`generate ${opts.out}: ${phases[p.phase]}`);
        }
        progress.update(p.phase === 'encode' ? p.done * 4096 : p.done, p.phase === 'encode' ? p.total * 4096 : p.total);
      },
    });
    progress.done();
  } else {
    const progress = progressLine(`generate ${opts.out}`);
    result = await generateFullPayload({
      target: opts.target,
      keys,
      version: opts.version,
      out: opts.out,
      force: opts.force === true,
      formatVersion: opts.formatVersion,
      level,
      onProgress: (p) => progress.update(p.bytesRead, p.targetSize),
    });
    progress.done();
  }
  if (opts.json) return printJson(result);
  const pct = result.targetSize > 0 ? ((result.payload.totalSize / result.targetSize) * 100).toFixed(1) : '0';
  const kind = 'sourceHash' in result ? `delta from ${opts.source}` : 'full';
  print(`wrote ${opts.out}: version ${result.version}, ${kind}, ${formatBytes(result.payload.totalSize)} (${pct}% of the ${formatBytes(result.targetSize)} image) in ${result.seconds.toFixed(2)} s (${formatRate(result.targetSize, result.seconds)})`);
  printOperationStats(result.operations);
  print(`  manifest ${formatBytes(result.payload.manifestSize)}, signed by ${result.keyIds.join(', ')}`);
}
