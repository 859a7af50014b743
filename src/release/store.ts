/**
 * The repository's payload store: files named by their SHA-256, written once. A new payload is
 * generated under a private temporary name in payloads/, hashed, then renamed to
 * `<sha256>.fpay`; the same bytes added twice are one file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FastPatchError } from '../errors.js';
import type { PayloadEntry } from './documents.js';
import type { ReleaseRepository } from './repository.js';

/** SHA-256 and SHA-1 (hex) and size of a file, read once. Throws FastPatchError('IO'). */
export async function hashFile(path: string): Promise<{ sha256: string; sha1: string; size: number }> {
  const sha256 = createHash('sha256');
  const sha1 = createHash('sha1');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      sha256.update(chunk as Buffer);
      sha1.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    throw new FastPatchError('IO', `read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return { sha256: sha256.digest('hex'), sha1: sha1.digest('hex'), size };
}

/** A name in payloads/ for a payload being generated; never a content name, never reused. */
export function incomingPath(repo: ReleaseRepository): string {
  return join(repo.dir, 'payloads', `.incoming-${randomBytes(12).toString('hex')}.fpay`);
}

/**
 * Moves a generated payload at `incoming` to its content name and returns its entry. A file
 * already there holds the same bytes (same SHA-256): the new copy is dropped.
 */
export async function storePayload(repo: ReleaseRepository, incoming: string, kind: PayloadEntry['kind'], from?: string): Promise<PayloadEntry> {
  const { sha256, sha1, size } = await hashFile(incoming);
  const final = repo.payloadPath(sha256);
  try {
    // link(2) never replaces: an existing content file stays the one readers may be reading.
    await fsp.link(incoming, final);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new FastPatchError('IO', `store ${final}: ${(err as Error).message}`, { cause: err });
  } finally {
    await fsp.rm(incoming, { force: true });
  }
  return { sha256, sha1, size, kind, ...(from !== undefined ? { from } : {}) };
}

/**
 * Checks that every payload of a release is in the store at its size, so a channel never points
 * at a missing file. Throws FastPatchError('IO') naming the first one that is not.
 */
export async function checkStored(repo: ReleaseRepository, payloads: readonly PayloadEntry[]): Promise<void> {
  for (const p of payloads) {
    const path = repo.payloadPath(p.sha256);
    const stats = await fsp.lstat(path).catch(() => undefined);
    if (!stats?.isFile() || stats.size !== p.size) {
      throw new FastPatchError('IO', `payload ${path} is ${stats ? `not the ${p.size}-byte file its record names` : 'missing'}; the repository is damaged (restore it from a copy)`);
    }
  }
}
