/**
 * `release list`: what a repository holds, every document's signature checked on the way.
 */
import { compareVersions } from '../format/version.js';
import type { ChannelMove, PayloadEntry } from './documents.js';
import { ReleaseRepository } from './repository.js';

export interface ListedRelease {
  version: string;
  added: string;
  image: { size: number; hash: string };
  payloads: PayloadEntry[];
  /** Channels whose current release this is. */
  channels: string[];
}

export interface ListedChannel {
  name: string;
  /** Undefined while the channel carries nothing. */
  version?: string;
  serial: number;
  lastMove?: ChannelMove;
}

export interface RepositoryListing {
  dir: string;
  /** Lowest first. */
  channels: ListedChannel[];
  /** Newest first. */
  releases: ListedRelease[];
}

/** Lists the repository in `dir`. Throws what ReleaseRepository.open and its readers throw. */
export async function listRepository(dir: string): Promise<RepositoryListing> {
  const repo = await ReleaseRepository.open(dir);
  const docs = await repo.readChannels();
  const channels: ListedChannel[] = [...docs].map(([name, doc]) => ({
    name,
    serial: doc?.serial ?? 0,
    ...(doc ? { version: doc.release.version, lastMove: doc.history[doc.history.length - 1]! } : {}),
  }));
  const releases: ListedRelease[] = [];
  for (const version of (await repo.versions()).sort((a, b) => compareVersions(b, a))) {
    const r = await repo.readRelease(version);
    if (!r) continue; // removed while listing
    releases.push({ version, added: r.added, image: r.image, payloads: r.payloads, channels: channels.filter((c) => c.version === version).map((c) => c.name) });
  }
  return { dir, channels, releases };
}
