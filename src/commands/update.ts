import { FastPatchError } from '../errors.js';
import { openPayload } from '../io/payload-source.js';
import { tuneRuntime } from '../runtime/tune.js';
import { readUpdateConfig, type UnknownReleasePolicy } from '../update/config.js';
import { RUNNING_HOW } from '../update/running.js';
import { updateDisk } from '../update/update.js';
import { httpOptions, type HttpFlags } from './http-options.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, formatRate, print, printError, printJson, progressLine } from './output.js';

/** Boot attempts `--tries` accepts: the 4-bit tries field of a GPT slot, less the 0 that means "never boot". */
const TRIES = { min: 1, max: 15 };

export async function run(
  payload: string,
  opts: { disk: string; pubkey: string[]; running?: string; tries?: number; sectorSize?: number; resume?: boolean; allowDowngrade?: boolean; unknownRelease?: UnknownReleasePolicy; config?: string; status?: string; json?: boolean } & HttpFlags,
): Promise<void> {
  if (opts.tries !== undefined && (opts.tries < TRIES.min || opts.tries > TRIES.max)) {
    throw new FastPatchError('USAGE', `--tries must be ${TRIES.min}-${TRIES.max} (boot attempts before the bootloader falls back), got ${opts.tries}`);
  }
  // Settings: the flag beats the file (--config, else /etc/fastpatch/update.conf when present).
  const config = await readUpdateConfig(opts.config);
  for (const note of config.notes) printError(`note: ${note}`);
  const unknownRelease = opts.unknownRelease ?? config.unknownRelease;
  tuneRuntime({ collections: true, optimizingCompiler: false }); // flat peak memory on long runs (runtime/tune.ts)
  const trustedKeys = await loadTrustedKeys(opts.pubkey);
  const progress = progressLine(`update ${opts.disk}`);
  const result = await updateDisk(openPayload(payload, { http: httpOptions(opts) }), {
    disk: opts.disk,
    trustedKeys,
    resume: opts.resume === true,
    allowDowngrade: opts.allowDowngrade === true,
    ...(unknownRelease !== undefined ? { unknownRelease } : {}),
    ...(opts.status !== undefined ? { statusPath: opts.status } : {}),
    ...(opts.running !== undefined ? { running: opts.running } : {}),
    ...(opts.tries !== undefined ? { tries: opts.tries } : {}),
    ...(opts.sectorSize !== undefined ? { sectorSize: opts.sectorSize } : {}),
    onProgress: (p) => progress.update(p.imageBytesDone, p.targetSize),
  });
  progress.done();
  if (opts.json) return printJson(result);
  const a = result.apply;
  const running = result.running.label || String(result.running.index);
  print(`wrote release ${a.version} (${formatBytes(a.targetSize)}, ${a.sourceSize > 0 ? 'delta' : 'full'}) into ${result.updated.label || result.updated.index} (${result.updated.written}) in ${a.seconds.toFixed(2)} s (${formatRate(a.targetSize, a.seconds)}); signature, every operation and the image hash checked`);
  if (result.status.problem) print(`warning: ${result.status.problem} (replaced, as --allow-downgrade was given)`);
  if (result.gptRepaired) print(`GPT: the interrupted update had left the two copies disagreeing (${result.gptRepaired.length} problem${result.gptRepaired.length === 1 ? '' : 's'}); repaired first, as \`fastpatch gpt repair\` does`);
  const how = RUNNING_HOW[result.running.how];
  if (result.runningVersion) print(`running slot ${running} (${how}) has release ${result.runningVersion}`);
  else print(`running slot ${running} (${how}): release unknown (${result.status.state === 'missing' ? 'no record' : 'not recorded'} in ${result.status.path}), no downgrade check; the record now has release ${a.version} for ${result.updated.label || result.updated.index}`);
  const next = result.nextBoot.bootable ? `partition ${result.nextBoot.index} (${result.nextBoot.label})` : 'nothing';
  print(`next boot: ${next} once; if it does not come up and is not marked good, the bootloader falls back to ${running}`);
}
