import { runDemo } from '../demo/run.js';
import { FastPatchError } from '../errors.js';
import { tuneRuntime } from '../runtime/tune.js';
import { print, printJson } from './output.js';

export async function run(opts: { keep?: boolean; json?: boolean }): Promise<void> {
  tuneRuntime({ collections: true }); // as the applier set it itself before (runtime/tune.ts)
  const result = await runDemo({ keep: opts.keep === true, log: opts.json ? undefined : print });
  if (opts.json) printJson(result);
  else if (opts.keep) print(`kept ${result.dir}`);
  if (!result.identical || !result.tamperedTargetUnchanged || result.tamperRefused === 'not refused' || !result.deltaIdentical || !result.wrongSourceRefused.startsWith('SOURCE_MISMATCH') || !result.cycleOk || !result.releaseStory.ok) {
    throw new FastPatchError('HASH_MISMATCH', 'demo failed: see the lines above');
  }
  if (!opts.json) print('demo passed');
}
