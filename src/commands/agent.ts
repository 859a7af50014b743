/**
 * `fastpatch agent [--once]`: the device daemon (agent/daemon.ts). Settings come from update.conf
 * as `check` reads them; flags override them. Logs go to stderr, one line per step; with
 * `--json` the result (what the start finished, the check, the strategy chosen, the reboot) is
 * printed on stdout when the agent returns.
 */
import { runAgent, type AgentOptions } from '../agent/daemon.js';
import { parseEndpoints } from '../fleet/endpoints.js';
import { parseRebootWindow } from '../fleet/window.js';
import { tuneRuntime } from '../runtime/tune.js';
import { escapeText } from '../text.js';
import type { RebootStrategy } from '../update/config.js';
import { httpOptions, type HttpFlags } from './http-options.js';
import { loadTrustedKeys } from './keys.js';
import { print, printError, printJson } from './output.js';

/** The flags of `fastpatch agent`, as the CLI parses them. */
export interface AgentFlags extends HttpFlags {
  disk: string; pubkey: string[]; server?: string; group?: string; config?: string; imageConfig?: string;
  machineIdFile?: string; bootIdFile?: string; status?: string; running?: string; appId?: string; unknownRelease?: 'allow' | 'refuse';
  once?: boolean; strategy?: RebootStrategy; windowStart?: string; windowLength?: string; etcd?: string; lockGroup?: string;
  healthCheck?: string; healthGrace?: number; healthTimeout?: number; rebootCommand?: string; json?: boolean;
}

/** Runs the agent until it reboots (or, with --once, one pass); SIGTERM and SIGINT stop the loop. */
export async function run(opts: AgentFlags): Promise<void> {
  tuneRuntime({ collections: true, optimizingCompiler: false }); // as `check`: flat peak memory while installing
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const window = opts.windowStart !== undefined || opts.windowLength !== undefined ? parseRebootWindow(opts.windowStart, opts.windowLength) : undefined;
  const options: AgentOptions = {
    disk: opts.disk, trustedKeys: await loadTrustedKeys(opts.pubkey), http: httpOptions(opts), signal: stop.signal,
    log: (line) => printError(line),
    ...defined({
      server: opts.server, group: opts.group, config: opts.config, imageConfig: opts.imageConfig, machineIdFile: opts.machineIdFile,
      bootIdFile: opts.bootIdFile, statusPath: opts.status, running: opts.running, appId: opts.appId, unknownRelease: opts.unknownRelease,
      once: opts.once, strategy: opts.strategy, window, etcdEndpoints: opts.etcd !== undefined ? parseEndpoints(opts.etcd) : undefined,
      lockGroup: opts.lockGroup, healthCheck: opts.healthCheck, healthGraceSeconds: opts.healthGrace, healthTimeoutSeconds: opts.healthTimeout,
      rebootCommand: opts.rebootCommand,
    }),
  };
  try {
    const result = await runAgent(options);
    if (opts.json) return printJson(result);
    print(`${result.boot.state}; ${result.strategy?.chosen ? `strategy ${result.strategy.chosen} (${escapeText(result.strategy.why ?? '')}); ` : ''}${result.reboot.done ? 'rebooted' : 'no reboot'}: ${escapeText(result.reboot.why)}`);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/** The entries whose value is not undefined (exactOptionalPropertyTypes). */
function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
