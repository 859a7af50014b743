/**
 * What the update service offers: each channel's release, read from the repository's signed
 * channel documents. Read again when a document changes (its size, mtime or inode), at most once a
 * second, so a promotion reaches devices within a second and an update check costs no file reads.
 * A document that fails its signature check, or whose serial is lower than the one served (an
 * older document put back), is not served; the channel keeps what it had.
 */
import { promises as fsp } from 'node:fs';
import type { PublicKey } from '../sign/keys.js';
import type { ChannelRecord } from '../release/documents.js';
import type { ReleaseRepository } from '../release/repository.js';

/** How often the documents' files are looked at (ms). */
export const CATALOG_REFRESH_MS = 1000;

interface Loaded {
  stamp: string;
  record: ChannelRecord | undefined;
}

export class ReleaseCatalog {
  private loaded = new Map<string, Loaded>();
  private checkedAt = -Infinity;
  private refreshing: Promise<void> | undefined;
  /** The last problem met reading a document, per channel (a bad signature, a damaged file). */
  readonly problems = new Map<string, string>();

  constructor(readonly repo: ReleaseRepository, private readonly trusted: readonly PublicKey[] = repo.config.keys, private readonly now: () => number = () => performance.now()) {}

  /** The channels in the repository's order, lowest first. */
  get channels(): readonly string[] {
    return this.repo.config.channels;
  }

  /** The channel's current release, or undefined while it carries none. */
  async channel(name: string): Promise<ChannelRecord | undefined> {
    if (this.now() - this.checkedAt >= CATALOG_REFRESH_MS) {
      this.refreshing ??= this.refresh().finally(() => {
        this.refreshing = undefined;
      });
      await this.refreshing;
    }
    return this.loaded.get(name)?.record;
  }

  private async refresh(): Promise<void> {
    for (const name of this.repo.config.channels) {
      const path = this.repo.channelPath(name);
      const stats = await fsp.stat(path).catch(() => undefined);
      const stamp = stats ? `${stats.ino}:${stats.size}:${stats.mtimeMs}` : 'none';
      if (this.loaded.get(name)?.stamp === stamp) continue;
      try {
        const record = await this.repo.readChannel(name, this.trusted);
        const before = this.loaded.get(name)?.record;
        // Signed, but older than what this server already served (a stale mirror, a restored
        // backup): taking it would move the channel backwards without anyone promoting.
        if (before && (!record || record.serial < before.serial)) {
          throw new Error(`channel document ${this.repo.channelPath(name)} has serial ${record?.serial ?? '(none)'}, older than the ${before.serial} served; not taken`);
        }
        this.loaded.set(name, { stamp, record });
        this.problems.delete(name);
      } catch (err) {
        // Keep serving what was read before; say what is wrong once per change of the file.
        this.problems.set(name, (err as Error).message);
        this.loaded.set(name, { stamp, record: this.loaded.get(name)?.record });
      }
    }
    this.checkedAt = this.now();
  }
}
