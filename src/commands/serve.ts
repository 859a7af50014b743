import { FastPatchError } from '../errors.js';
import { startServer } from '../server/http-server.js';
import { escapeText } from '../text.js';
import { loadTrustedKeys } from './keys.js';
import { parseListen } from './parse.js';
import { print, printError, untilStopped } from './output.js';

export async function run(dir: string, opts: { listen: string; state: string; baseUrl?: string; pubkey?: string[]; appId?: string[]; maxMachines?: number }): Promise<void> {
  const { host, port } = parseListen(opts.listen);
  if (opts.baseUrl !== undefined && !/^https?:\/\/\S+$/.test(opts.baseUrl)) throw new FastPatchError('USAGE', `--base-url expects an http(s):// URL, got "${escapeText(opts.baseUrl)}"`);
  const trusted = opts.pubkey && opts.pubkey.length > 0 ? await loadTrustedKeys(opts.pubkey) : undefined;
  const log = (line: string) => printError(`${new Date().toISOString()} ${escapeText(line)}`);
  const server = await startServer({
    repository: dir, state: opts.state, host, port, log,
    ...(opts.baseUrl !== undefined ? { baseUrl: opts.baseUrl } : {}),
    ...(trusted ? { trusted } : {}),
    ...(opts.appId && opts.appId.length > 0 ? { appIds: opts.appId } : {}),
    ...(opts.maxMachines !== undefined ? { maxMachines: opts.maxMachines } : {}),
  });
  print(`serving ${escapeText(dir)}: Omaha at ${server.url}v1/update/, payloads at ${server.url}payloads/; state in ${escapeText(opts.state)}`);
  // A daemon's stop is not an interruption: close, and exit 0 (every change is already committed).
  await untilStopped();
  await server.close();
  print('stopped');
}
