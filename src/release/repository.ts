/**
 * A release repository: a folder any static web server or CDN can publish (docs/RELEASES.md).
 *
 *   repository.json           channel order, how many deltas a release gets, the signers' public keys
 *   payloads/<sha256>.fpay     payload files, named by their SHA-256: written once, never changed
 *   releases/<version>.json   a signed release record: the image and its payloads (full + deltas)
 *   channels/<name>.json      a signed channel document: the release the channel carries, and its moves
 *   .lock                     publishers take turns on it (flock), so two at once never lose a write
 *
 * State is pointers over immutable, content-addressed files (Nebraska's model): a promotion writes
 * one small document and never a payload, so every channel serves the same bytes.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FastPatchError } from '../errors.js';
import { lockDisk } from '../disk/lock.js';
import { readSmallFile, writeFileAtomically } from '../io/safe-files.js';
import { hex } from '../hex.js';
import { keyIdOf, type PrivateKey, type PublicKey } from '../sign/keys.js';
import { MAX_DOCUMENT_BYTES, openDocument, readChannelRecord, readReleaseRecord, signDocument, type ChannelRecord, type ReleaseRecord } from './documents.js';

export const REPOSITORY_FILE = 'repository.json';
export const DEFAULT_CHANNELS: readonly string[] = ['alpha', 'beta', 'stable'];
/** Deltas a new release gets by default: from the last three releases any channel carried. */
export const DEFAULT_KEEP_DELTAS = 3;
export const MAX_KEEP_DELTAS = 16;
/** How long a publisher waits for another one's lock (a delta is generated before the lock is taken). */
export const PUBLISH_LOCK_SECONDS = 60;
const CHANNEL_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface RepositoryConfig {
  format: 1;
  /** Lowest first: releases enter at channels[0] and are promoted one channel up at a time. */
  channels: string[];
  keepDeltas: number;
  /** Public keys whose signatures the repository's documents carry. */
  keys: PublicKey[];
}

/** Throws RangeError unless `name` is a channel name (lower-case letters, digits, `.`, `_`, `-`; 1-64). */
export function checkChannelName(name: string): void {
  if (!CHANNEL_RE.test(name)) throw new RangeError(`channel "${name}" must be 1-64 of a-z 0-9 . _ - starting with a letter or digit`);
}

function configText(c: RepositoryConfig): string {
  const keys = c.keys.map((k) => ({ id: hex(k.keyId), ed25519: Buffer.from(k.publicKey).toString('base64') }));
  return `${JSON.stringify({ format: 1, channels: c.channels, keep_deltas: c.keepDeltas, keys }, null, 2)}\n`;
}

function parseConfig(text: string, path: string): RepositoryConfig {
  const bad = (why: string): never => {
    throw new FastPatchError('CORRUPT_DOCUMENT', `${path}: ${why}`);
  };
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return bad('not JSON');
  }
  if (typeof v !== 'object' || v === null || v['format'] !== 1) bad('not a FastPatch repository of format 1');
  const channels = v['channels'];
  if (!Array.isArray(channels) || channels.length === 0 || channels.length > 16 || channels.some((c) => typeof c !== 'string' || !CHANNEL_RE.test(c))) bad('channels must be 1-16 channel names');
  if (new Set(channels as string[]).size !== (channels as string[]).length) bad('a channel is named twice');
  const keep = v['keep_deltas'];
  if (typeof keep !== 'number' || !Number.isSafeInteger(keep) || keep < 0 || keep > MAX_KEEP_DELTAS) bad(`keep_deltas must be 0-${MAX_KEEP_DELTAS}`);
  const keys = v['keys'];
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 16) bad('keys must list 1-16 public keys');
  const publicKeys = (keys as unknown[]).map((k, i): PublicKey => {
    const key = typeof k === 'object' && k !== null ? (k as Record<string, unknown>)['ed25519'] : undefined;
    const bytes = typeof key === 'string' ? Buffer.from(key, 'base64') : Buffer.alloc(0);
    if (bytes.length !== 32) bad(`key ${i} is not a base64 ed25519 public key`);
    return { kind: 'public', publicKey: Uint8Array.from(bytes), keyId: keyIdOf(bytes) };
  });
  return { format: 1, channels: channels as string[], keepDeltas: keep as number, keys: publicKeys };
}

/** An opened repository: its folder, its settings, and readers for its documents. */
export class ReleaseRepository {
  private constructor(readonly dir: string, readonly config: RepositoryConfig) {}

  /**
   * Makes `dir` a repository (created when missing; an existing one must be empty of a
   * repository.json). Throws FastPatchError('IO' | 'USAGE'), RangeError for a bad channel name.
   */
  static async init(dir: string, options: { keys: readonly (PrivateKey | PublicKey)[]; channels?: readonly string[]; keepDeltas?: number }): Promise<ReleaseRepository> {
    const channels = [...(options.channels ?? DEFAULT_CHANNELS)];
    channels.forEach(checkChannelName);
    if (channels.length === 0 || new Set(channels).size !== channels.length) throw new RangeError('channels: one or more distinct names');
    const keepDeltas = options.keepDeltas ?? DEFAULT_KEEP_DELTAS;
    if (!Number.isSafeInteger(keepDeltas) || keepDeltas < 0 || keepDeltas > MAX_KEEP_DELTAS) throw new RangeError(`keepDeltas must be 0-${MAX_KEEP_DELTAS}`);
    if (options.keys.length === 0) throw new TypeError('keys: at least one key signs the repository');
    const config: RepositoryConfig = { format: 1, channels, keepDeltas, keys: options.keys.map((k) => ({ kind: 'public', publicKey: k.publicKey, keyId: k.keyId })) };
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    for (const sub of ['payloads', 'releases', 'channels']) await fsp.mkdir(join(dir, sub), { mode: 0o755 }).catch(existsOk);
    const lock = await fsp.open(join(dir, '.lock'), 'a', 0o644).catch((err: unknown) => {
      throw new FastPatchError('IO', `create ${join(dir, '.lock')}: ${(err as Error).message}`, { cause: err });
    });
    await lock.close();
    try {
      await writeFileAtomically(join(dir, REPOSITORY_FILE), configText(config), { noReplace: true });
    } catch (err) {
      if (err instanceof FastPatchError && /exists/.test(err.message)) throw new FastPatchError('USAGE', `${dir} is already a release repository (${REPOSITORY_FILE} exists); nothing changed`);
      throw err;
    }
    return new ReleaseRepository(dir, config);
  }

  /** Opens the repository in `dir`. Throws FastPatchError('USAGE' when it is none, 'IO', 'CORRUPT_DOCUMENT'). */
  static async open(dir: string): Promise<ReleaseRepository> {
    const path = join(dir, REPOSITORY_FILE);
    const text = await readText(path, 64 * 1024, 'repository settings');
    if (text === undefined) throw new FastPatchError('USAGE', `${dir} is not a release repository (no ${REPOSITORY_FILE}); create one with \`fastpatch release init ${dir} --key KEY\``);
    return new ReleaseRepository(dir, parseConfig(text, path));
  }

  payloadPath(sha256: string): string {
    return join(this.dir, 'payloads', `${sha256}.fpay`);
  }

  releasePath(version: string): string {
    return join(this.dir, 'releases', `${version}.json`);
  }

  channelPath(name: string): string {
    return join(this.dir, 'channels', `${name}.json`);
  }

  /** Refuses keys the repository does not list: their documents would not verify for readers. */
  checkSigningKeys(keys: readonly PrivateKey[]): void {
    if (keys.length === 0) throw new TypeError('keys: at least one signing key is needed');
    for (const k of keys) {
      if (!this.config.keys.some((t) => hex(t.keyId) === hex(k.keyId))) {
        throw new FastPatchError('UNTRUSTED_KEY', `key ${hex(k.keyId)} is not one of the repository's keys (${this.config.keys.map((t) => hex(t.keyId)).join(', ')}) in ${join(this.dir, REPOSITORY_FILE)}`);
      }
    }
  }

  /** The release record of `version`, signature checked, or undefined when it was never added. */
  async readRelease(version: string, trusted: readonly PublicKey[] = this.config.keys): Promise<ReleaseRecord | undefined> {
    const path = this.releasePath(version);
    const text = await readText(path, MAX_DOCUMENT_BYTES, 'release record');
    if (text === undefined) return undefined;
    const record = readReleaseRecord(openDocument(text, trusted, `release record ${path}`).signed, `release record ${path}`);
    if (record.version !== version) throw new FastPatchError('CORRUPT_DOCUMENT', `release record ${path} is of release ${record.version}`);
    return record;
  }

  /** The channel's document, signature checked, or undefined when the channel never carried a release. */
  async readChannel(name: string, trusted: readonly PublicKey[] = this.config.keys): Promise<ChannelRecord | undefined> {
    const path = this.channelPath(name);
    const text = await readText(path, MAX_DOCUMENT_BYTES, 'channel document');
    if (text === undefined) return undefined;
    const record = readChannelRecord(openDocument(text, trusted, `channel document ${path}`).signed, `channel document ${path}`);
    if (record.channel !== name) throw new FastPatchError('CORRUPT_DOCUMENT', `channel document ${path} is of channel ${record.channel}`);
    return record;
  }

  /** Every channel's document, in channel order (undefined for one that carries nothing yet). */
  async readChannels(): Promise<Map<string, ChannelRecord | undefined>> {
    const out = new Map<string, ChannelRecord | undefined>();
    for (const name of this.config.channels) out.set(name, await this.readChannel(name));
    return out;
  }

  /** Versions with a release record, in no particular order. */
  async versions(): Promise<string[]> {
    const names = await fsp.readdir(join(this.dir, 'releases')).catch((err: unknown) => {
      throw new FastPatchError('IO', `read ${join(this.dir, 'releases')}: ${(err as Error).message}`, { cause: err });
    });
    return names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -5));
  }

  /** Writes a signed document atomically (readers see the old one or the new one whole). */
  async writeDocument(path: string, signed: unknown, keys: readonly PrivateKey[], options: { noReplace?: boolean } = {}): Promise<void> {
    await writeFileAtomically(path, signDocument(signed, keys), { mode: 0o644, ...options });
  }

  /** Runs `work` holding the publishers' lock, so read-change-write of the documents is never interleaved. */
  async withLock<T>(work: () => Promise<T>, waitSeconds = PUBLISH_LOCK_SECONDS): Promise<T> {
    const lock = await lockDisk(join(this.dir, '.lock'), waitSeconds, 'another publisher');
    try {
      return await work();
    } finally {
      await lock.release();
    }
  }
}

function existsOk(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EEXIST') throw new FastPatchError('IO', `create folder: ${err.message}`, { cause: err });
}

/** A small text file, or undefined when it does not exist. */
async function readText(path: string, max: number, what: string): Promise<string | undefined> {
  try {
    return (await readSmallFile(path, max, what)).bytes.toString('utf8');
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return undefined;
    throw err;
  }
}
