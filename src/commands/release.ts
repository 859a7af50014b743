import { FastPatchError } from '../errors.js';
import { addRelease } from '../release/add.js';
import { listRepository, type RepositoryListing } from '../release/list.js';
import { promoteRelease } from '../release/promote.js';
import { ReleaseRepository } from '../release/repository.js';
import { tuneRuntime } from '../runtime/tune.js';
import { escapeText } from '../text.js';
import { loadSigningKeys } from './keys.js';
import { formatBytes, print, printJson, progressLine } from './output.js';

/** `--channels alpha,beta,stable` as a list. */
function channelList(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').map((c) => c.trim()).filter((c) => c !== '');
}

/** A bad argument (RangeError, TypeError from the library) is bad usage: exit 2, one line. */
function asUsage(err: unknown): never {
  if (err instanceof RangeError || err instanceof TypeError) throw new FastPatchError('USAGE', err.message);
  throw err;
}

export async function init(dir: string, opts: { key: string[]; channels?: string; keepDeltas?: number; json?: boolean }): Promise<void> {
  const keys = await loadSigningKeys(opts.key);
  const channels = channelList(opts.channels);
  const repo = await ReleaseRepository.init(dir, { keys, ...(channels ? { channels } : {}), ...(opts.keepDeltas !== undefined ? { keepDeltas: opts.keepDeltas } : {}) }).catch(asUsage);
  if (opts.json) return printJson({ dir, channels: repo.config.channels, keepDeltas: repo.config.keepDeltas, keyIds: repo.config.keys.map((k) => Buffer.from(k.keyId).toString('hex')) });
  print(`release repository ${escapeText(dir)}: channels ${repo.config.channels.join(' -> ')}, deltas from the last ${repo.config.keepDeltas} releases carried`);
  print(`next: fastpatch release add ${escapeText(dir)} IMAGE --version VERSION --key ${escapeText(opts.key[0]!)}`);
}

export async function add(dir: string, image: string, opts: { key: string[]; version: string; channel?: string; deltas?: number; json?: boolean }): Promise<void> {
  tuneRuntime({ collections: true }); // delta generation's workers let go of large buffers per job
  const keys = await loadSigningKeys(opts.key);
  let progress = progressLine('');
  const result = await addRelease(dir, {
    image, version: opts.version, keys,
    ...(opts.channel !== undefined ? { channel: opts.channel } : {}),
    ...(opts.deltas !== undefined ? { deltas: opts.deltas } : {}),
    onStep: (s) => {
      progress.done();
      progress = progressLine(s.kind === 'full' ? `full payload (${s.index + 1}/${s.of})` : `delta from ${s.from} (${s.index + 1}/${s.of})`);
    },
    onProgress: (done, total) => progress.update(done, total),
  }).catch(asUsage);
  progress.done();
  if (opts.json) return printJson(result);
  const r = result.release;
  print(`added release ${r.version}: image ${formatBytes(r.image.size)}, ${r.payloads.length} payload${r.payloads.length === 1 ? '' : 's'} stored by content`);
  for (const p of r.payloads) print(`  ${(p.kind === 'full' ? 'full' : `delta from ${p.from}`).padEnd(18)} ${formatBytes(p.size).padStart(10)}  payloads/${p.sha256}.fpay`);
  for (const v of result.skippedDeltas) print(`  delta from ${v}: no smaller than the full payload, left out`);
  const c = result.channel;
  if (c.moved) print(`${c.name}: ${c.previous ?? '(nothing)'} -> ${r.version}`);
  else print(`${c.name}: stays at ${c.previous} (${c.why})`);
}

export async function promote(dir: string, opts: { key: string[]; version: string; to: string; force?: boolean; reason?: string; json?: boolean }): Promise<void> {
  if (opts.reason !== undefined && !opts.force) throw new FastPatchError('USAGE', '--reason is recorded with a forced move: give it with --force');
  const keys = await loadSigningKeys(opts.key);
  const result = await promoteRelease(dir, { version: opts.version, to: opts.to, keys, ...(opts.force ? { force: true } : {}), ...(opts.reason !== undefined ? { reason: opts.reason } : {}) });
  if (opts.json) return printJson(result);
  if (result.how === 'unchanged') return print(`${result.channel} already carries ${result.version}; nothing changed`);
  const forced = result.how === 'force' ? ' (forced; recorded in the channel history)' : '';
  print(`${result.channel}: ${result.previous ?? '(nothing)'} -> ${result.version}, the payloads ${result.from} serves, bit for bit${forced}`);
}

export async function list(dir: string, opts: { json?: boolean }): Promise<void> {
  const listing = await listRepository(dir);
  if (opts.json) return printJson(listing);
  printListing(listing);
}

function printListing(l: RepositoryListing): void {
  print('channels (lowest first):');
  for (const c of l.channels) {
    const move = c.lastMove ? `  ${c.lastMove.how}${c.lastMove.from ? ` from ${c.lastMove.from}` : ''} ${c.lastMove.at}${c.lastMove.reason ? ` (${escapeText(c.lastMove.reason)})` : ''}` : '';
    print(`  ${c.name.padEnd(10)} ${(c.version ?? '(nothing)').padEnd(12)}${move}`);
  }
  print('releases (newest first):');
  for (const r of l.releases) {
    const deltas = r.payloads.filter((p) => p.kind === 'delta');
    const full = r.payloads.find((p) => p.kind === 'full')!;
    const from = deltas.length > 0 ? `, deltas from ${deltas.map((d) => `${d.from} (${formatBytes(d.size)})`).join(', ')}` : '';
    const on = r.channels.length > 0 ? `  [${r.channels.join(', ')}]` : '';
    print(`  ${r.version.padEnd(12)} full ${formatBytes(full.size)}${from}${on}`);
  }
}
