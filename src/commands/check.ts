import { checkForUpdate } from '../agent/check.js';
import { tuneRuntime } from '../runtime/tune.js';
import { escapeText } from '../text.js';
import { httpOptions, type HttpFlags } from './http-options.js';
import { loadTrustedKeys } from './keys.js';
import { formatBytes, print, printError, printJson, progressLine } from './output.js';

export async function run(opts: {
  disk: string; pubkey: string[]; server?: string; group?: string; config?: string; imageConfig?: string;
  machineIdFile?: string; bootIdFile?: string; status?: string; running?: string; appId?: string; unknownRelease?: 'allow' | 'refuse'; json?: boolean;
} & HttpFlags): Promise<void> {
  tuneRuntime({ collections: true, optimizingCompiler: false }); // as `update`: flat peak memory (runtime/tune.ts)
  const trustedKeys = await loadTrustedKeys(opts.pubkey);
  const progress = progressLine(`update ${opts.disk}`);
  const result = await checkForUpdate({
    disk: opts.disk, trustedKeys, http: httpOptions(opts),
    ...(opts.server !== undefined ? { server: opts.server } : {}),
    ...(opts.group !== undefined ? { group: opts.group } : {}),
    ...(opts.config !== undefined ? { config: opts.config } : {}),
    ...(opts.imageConfig !== undefined ? { imageConfig: opts.imageConfig } : {}),
    ...(opts.machineIdFile !== undefined ? { machineIdFile: opts.machineIdFile } : {}),
    ...(opts.bootIdFile !== undefined ? { bootIdFile: opts.bootIdFile } : {}),
    ...(opts.status !== undefined ? { statusPath: opts.status } : {}),
    ...(opts.running !== undefined ? { running: opts.running } : {}),
    ...(opts.appId !== undefined ? { appId: opts.appId } : {}),
    ...(opts.unknownRelease !== undefined ? { unknownRelease: opts.unknownRelease } : {}),
    onProgress: (p) => progress.update(p.imageBytesDone, p.targetSize),
    log: (line) => {
      progress.done();
      printError(line);
    },
  });
  progress.done();
  if (opts.json) return printJson(result);
  const running = `${result.running.version ?? 'an unknown release'} (slot ${escapeText(result.running.slot)})`;
  for (const e of result.reported.filter((x) => x.type === 3 && x.previousVersion !== undefined)) {
    print(e.result === 2 ? `reported: the update from ${e.previousVersion} is running` : `reported: rolled back to ${e.previousVersion} (the bootloader fell back)`);
  }
  if (result.outcome === 'updated') {
    const u = result.update!;
    print(`installed ${u.apply.version} (${result.offered!.kind}, ${formatBytes(result.offered!.size)} payload) into ${escapeText(u.updated.label || String(u.updated.index))} over ${running}; signature, every operation and the image checked`);
    print(`next boot: ${u.nextBoot.bootable ? `${escapeText(u.nextBoot.label)} once` : 'unchanged'}; the next check after the reboot reports how it went to ${escapeText(result.server)}`);
  } else if (result.outcome === 'reboot-pending') {
    print(`running ${running}; ${escapeText(result.reason!)}`);
  } else {
    print(`no update for ${running} on ${escapeText(result.group)}: ${escapeText(result.reason!)}`);
  }
}
