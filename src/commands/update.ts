import { disableOptimizingCompiler, RUNNING_HOW, openPayload, updateDisk } from '../index.js';
import { httpOptions, type HttpFlags } from './http-options.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, formatRate, print, printJson, progressLine } from './output.js';

export async function run(payload: string, opts: { disk: string; pubkey: string[]; running?: string; tries?: number; sectorSize?: number; resume?: boolean; allowDowngrade?: boolean; status?: string; json?: boolean } & HttpFlags): Promise<void> {
  disableOptimizingCompiler(); // flat peak memory on long runs (apply/optimizer.ts)
  const trustedKeys = await loadTrustedKeys(opts.pubkey);
  const progress = progressLine(`update ${opts.disk}`);
  const result = await updateDisk(openPayload(payload, { http: httpOptions(opts) }), {
    disk: opts.disk,
    trustedKeys,
    resume: opts.resume === true,
    allowDowngrade: opts.allowDowngrade === true,
    ...(opts.status !== undefined ? { statusPath: opts.status } : {}),
    ...(opts.running !== undefined ? { running: opts.running } : {}),
    ...(opts.tries !== undefined ? { tries: opts.tries } : {}),
    ...(opts.sectorSize !== undefined ? { sectorSize: opts.sectorSize } : {}),
    onProgress: (p) => progress.update(p.imageBytesDone, p.targetSize),
  });
  progress.done();
  const next = result.nextBoot.bootable ? `partition ${result.nextBoot.index}` : 'nothing';
  if (opts.json) return printJson({ ...result, nextBoot: { bootable: result.nextBoot.bootable, index: result.nextBoot.bootable ? result.nextBoot.index : null } });
  const a = result.apply;
  print(`wrote release ${a.version} (${formatBytes(a.targetSize)}, ${a.sourceSize > 0 ? 'delta' : 'full'}) into ${result.updated.label || result.updated.index} (${result.updated.written}) in ${a.seconds.toFixed(2)} s (${formatRate(a.targetSize, a.seconds)}); signature, every operation and the image hash checked`);
  if (result.status.problem) print(`warning: ${result.status.problem}`);
  if (result.gptRepaired) print(`GPT: the interrupted update had left the two copies disagreeing (${result.gptRepaired.length} problem${result.gptRepaired.length === 1 ? '' : 's'}); repaired first, as \`fastpatch gpt repair\` does`);
  const how = RUNNING_HOW[result.running.how];
  print(result.runningVersion ? `running slot ${result.running.label || result.running.index} (${how}) has release ${result.runningVersion}` : `running slot ${result.running.label || result.running.index} (${how}): release unknown (no record in ${result.status.path}), no downgrade check`);
  print(`next boot: ${next} (${result.updated.label}) once; if it does not come up and is not marked good, the bootloader falls back to ${result.running.label || result.running.index}`);
}
