/**
 * `release promote`: a channel moves to a release the next-lower channel carries or has carried,
 * bit-for-bit: the channel's new document holds the very release record the lower channel had,
 * so its devices download and verify the same payload files. Nothing is generated or copied.
 *
 * Refused (FastPatchError 'RELEASE_REFUSED'): a release the lower channel never carried, a move
 * backwards, the lowest channel (releases enter there with `add`). `force` allows the last two
 * kinds of move, and the channel's history records it as forced, with the reason given.
 */
import { FastPatchError } from '../errors.js';
import { compareVersions } from '../format/version.js';
import type { PrivateKey } from '../sign/keys.js';
import { MAX_HISTORY, type ChannelMove, type ChannelRecord, type ReleaseRecord } from './documents.js';
import { ReleaseRepository } from './repository.js';
import { checkStored } from './store.js';

export interface PromoteOptions {
  version: string;
  /** The channel to move. */
  to: string;
  keys: readonly PrivateKey[];
  /** Allow a move backwards, or of a release the next-lower channel never carried; recorded. */
  force?: boolean;
  /** Why, for the history (recorded with a forced move). */
  reason?: string;
}

export interface PromoteResult {
  channel: string;
  version: string;
  previous?: string;
  from?: string;
  how: ChannelMove['how'] | 'unchanged';
}

/**
 * Writes `channel`'s next document: `release`, serial + 1, `move` appended to the history (the
 * oldest moves dropped past MAX_HISTORY). The caller holds the publishers' lock.
 */
export async function moveChannel(repo: ReleaseRepository, channel: string, current: ChannelRecord | undefined, release: ReleaseRecord, move: ChannelMove, keys: readonly PrivateKey[]): Promise<void> {
  await checkStored(repo, release.payloads);
  const history = [...(current?.history ?? []), move].slice(-MAX_HISTORY);
  const next: ChannelRecord = { type: 'channel', channel, serial: (current?.serial ?? 0) + 1, release, history };
  await repo.writeDocument(repo.channelPath(channel), next, keys);
}

/** Promotes release `options.version` to channel `options.to` in the repository in `dir`. */
export async function promoteRelease(dir: string, options: PromoteOptions): Promise<PromoteResult> {
  const repo = await ReleaseRepository.open(dir);
  repo.checkSigningKeys(options.keys);
  const order = repo.config.channels;
  const at = order.indexOf(options.to);
  if (at < 0) throw new FastPatchError('USAGE', `no channel ${options.to} in ${dir}; its channels, lowest first: ${order.join(', ')}`);
  if (at === 0) throw new FastPatchError('RELEASE_REFUSED', `${options.to} is the lowest channel: releases enter there with \`fastpatch release add\`, not by promotion`);
  const lower = order[at - 1]!;
  return repo.withLock(async () => {
    const release = await repo.readRelease(options.version);
    if (!release) throw new FastPatchError('RELEASE_REFUSED', `release ${options.version} is not in ${dir}; releases: ${(await repo.versions()).sort(compareVersions).join(', ') || 'none yet'}`);
    const lowerDoc = await repo.readChannel(lower);
    const carried = lowerDoc?.release.version === options.version || (lowerDoc?.history ?? []).some((m) => m.version === options.version);
    const current = await repo.readChannel(options.to);
    const previous = current?.release.version;
    if (previous === options.version) return { channel: options.to, version: options.version, previous, how: 'unchanged' as const };
    const backwards = previous !== undefined && compareVersions(options.version, previous) < 0;
    if (!options.force) {
      if (!carried) throw new FastPatchError('RELEASE_REFUSED', `${lower} never carried ${options.version} (it carries ${lowerDoc?.release.version ?? 'nothing'}): a release reaches ${options.to} only through ${lower}; promote it to ${lower} first, or give --force with --reason`);
      if (backwards) throw new FastPatchError('RELEASE_REFUSED', `${options.to} carries ${previous}, newer than ${options.version}: a channel moves backwards only with --force (devices never downgrade; they wait until the channel passes their release)`);
    }
    const how: ChannelMove['how'] = !carried || backwards ? 'force' : 'promote';
    const move: ChannelMove = { version: options.version, at: new Date().toISOString(), how, from: lower, ...(options.reason ? { reason: options.reason } : {}) };
    await moveChannel(repo, options.to, current, release, move, options.keys);
    return { channel: options.to, version: options.version, ...(previous ? { previous } : {}), from: lower, how };
  });
}
