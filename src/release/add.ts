/**
 * `release add`: an image becomes a release. Its full payload and deltas from the last few
 * releases any channel has carried are generated and stored by content, its signed record is
 * written, and the lowest channel moves to it (never backwards).
 *
 * The payloads are generated before the publishers' lock is taken (minutes for a large image);
 * only the read-change-write of the documents runs under it, after reading them again, so a
 * second publisher waits seconds, never loses its write and never moves a channel backwards.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FastPatchError } from '../errors.js';
import { compareVersions } from '../format/version.js';
import { checkReleaseVersion } from '../format/manifest.js';
import { applyPayload } from '../apply/applier.js';
import { openPayload } from '../io/payload-source.js';
import { generateFullPayload } from '../generate/generator.js';
import { generateDeltaPayload } from '../generate/delta.js';
import type { PrivateKey } from '../sign/keys.js';
import type { PayloadEntry, ReleaseRecord } from './documents.js';
import { ReleaseRepository } from './repository.js';
import { checkStored, incomingPath, storePayload } from './store.js';
import { moveChannel } from './promote.js';

export interface AddOptions {
  /** The image file (or block device) of the new release. */
  image: string;
  version: string;
  keys: readonly PrivateKey[];
  /** Channel to move to the release: the lowest one (the default), where releases enter. */
  channel?: string;
  /** Deltas to generate, from the most recent releases any channel carried (default: the repository's keep_deltas). */
  deltas?: number;
  /** Told before each payload is generated. */
  onStep?: (step: { kind: 'full' | 'delta'; from?: string; index: number; of: number }) => void;
  /** Progress within the step: bytes of the image read or encoded, of `total`. */
  onProgress?: (done: number, total: number) => void;
}

export interface AddResult {
  release: ReleaseRecord;
  /** Deltas that came out no smaller than the full payload, left out. */
  skippedDeltas: string[];
  channel: { name: string; previous?: string; moved: boolean; why?: string };
}

/**
 * Adds release `options.version` from `options.image` to the repository in `dir`. Throws
 * FastPatchError: 'RELEASE_REFUSED' (the version exists; a channel other than the lowest),
 * 'UNTRUSTED_KEY' (a key the repository does not list), 'IO', and the generators' errors.
 */
export async function addRelease(dir: string, options: AddOptions): Promise<AddResult> {
  const repo = await ReleaseRepository.open(dir);
  checkReleaseVersion(options.version);
  repo.checkSigningKeys(options.keys);
  const lowest = repo.config.channels[0]!;
  const channel = options.channel ?? lowest;
  if (channel !== lowest) {
    throw new FastPatchError('RELEASE_REFUSED', `releases enter at the lowest channel, ${lowest}; add ${options.version} there and promote it (\`fastpatch release promote ${dir} --version ${options.version} --to ${channel}\`)`);
  }
  if (await repo.readRelease(options.version)) throw alreadyAdded(dir, options.version);
  const sources = await deltaSources(repo, options.version, options.deltas ?? repo.config.keepDeltas);
  const of = 1 + sources.length;
  options.onStep?.({ kind: 'full', index: 0, of });
  const full = await generateFull(repo, options);
  const payloads: PayloadEntry[] = [full.entry];
  const skippedDeltas: string[] = [];
  for (const [i, from] of sources.entries()) {
    options.onStep?.({ kind: 'delta', from: from.version, index: i + 1, of });
    const delta = await generateDelta(repo, options, from);
    if (delta.size < full.entry.size) payloads.push(delta);
    else {
      skippedDeltas.push(from.version);
      await fsp.rm(repo.payloadPath(delta.sha256), { force: true }).catch(() => {});
    }
  }
  const release: ReleaseRecord = { type: 'release', version: options.version, image: full.image, payloads, added: new Date().toISOString() };
  return repo.withLock(async () => {
    if (await repo.readRelease(options.version)) throw alreadyAdded(dir, options.version);
    await checkStored(repo, payloads);
    await repo.writeDocument(repo.releasePath(options.version), release, options.keys, { noReplace: true });
    const current = await repo.readChannel(channel);
    if (current && compareVersions(current.release.version, options.version) > 0) {
      return { release, skippedDeltas, channel: { name: channel, previous: current.release.version, moved: false, why: `${channel} carries ${current.release.version}, newer than ${options.version}: a channel never moves backwards by an add` } };
    }
    await moveChannel(repo, channel, current, release, { version: options.version, at: release.added, how: 'add' }, options.keys);
    return { release, skippedDeltas, channel: { name: channel, ...(current ? { previous: current.release.version } : {}), moved: true } };
  });
}

const alreadyAdded = (dir: string, version: string) =>
  new FastPatchError('RELEASE_REFUSED', `release ${version} is already in ${dir}; a release's bytes never change: add the new image under a new version`);

/**
 * The releases to make deltas from: the most recently carried by any channel (by the time of the
 * move that put them there), older than the new one, at most `keep`.
 */
async function deltaSources(repo: ReleaseRepository, version: string, keep: number): Promise<ReleaseRecord[]> {
  const moves: { version: string; at: string }[] = [];
  for (const doc of (await repo.readChannels()).values()) moves.push(...(doc?.history ?? []));
  moves.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  const out: ReleaseRecord[] = [];
  for (const m of moves) {
    if (out.length >= keep) break;
    if (compareVersions(m.version, version) >= 0 || out.some((r) => r.version === m.version)) continue;
    const record = await repo.readRelease(m.version);
    if (record) out.push(record);
  }
  return out;
}

async function generateFull(repo: ReleaseRepository, options: AddOptions): Promise<{ entry: PayloadEntry; image: ReleaseRecord['image'] }> {
  const out = incomingPath(repo);
  try {
    const result = await generateFullPayload({ target: options.image, keys: options.keys, version: options.version, out, ...(options.onProgress ? { onProgress: (p: { bytesRead: number; targetSize: number }) => options.onProgress!(p.bytesRead, p.targetSize) } : {}) });
    return { entry: await storePayload(repo, out, 'full'), image: { size: result.targetSize, hash: result.targetHash } };
  } finally {
    await fsp.rm(out, { force: true });
  }
}

/**
 * A delta from release `from` to the new image. The source image is rebuilt from `from`'s full
 * payload (its signature and every block checked, as a device would), so the repository keeps no
 * images, only payloads.
 */
async function generateDelta(repo: ReleaseRepository, options: AddOptions, from: ReleaseRecord): Promise<PayloadEntry> {
  const work = await fsp.mkdtemp(join(tmpdir(), 'fastpatch-release-'));
  const out = incomingPath(repo);
  try {
    const source = join(work, `${from.version}.img`);
    const full = from.payloads.find((p) => p.kind === 'full')!;
    await applyPayload(openPayload(repo.payloadPath(full.sha256)), { target: source, trustedKeys: repo.config.keys });
    await generateDeltaPayload({ source, sourceVersion: from.version, target: options.image, keys: options.keys, version: options.version, out, ...(options.onProgress ? { onProgress: (p: { done: number; total: number }) => options.onProgress!(p.done, p.total) } : {}) });
    return await storePayload(repo, out, 'delta', from.version);
  } finally {
    await fsp.rm(out, { force: true });
    await fsp.rm(work, { recursive: true, force: true });
  }
}
