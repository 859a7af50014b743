import { promises as fsp } from 'node:fs';
import { FastPatchError, ioError } from '../errors.js';
import { formatPrivateKey, formatPublicKey, parseKey, type PrivateKey, type PublicKey } from './keys.js';

/** Reads and parses a key file. Throws FastPatchError('IO' | 'BAD_KEY_FILE'). */
export async function loadKeyFile(path: string): Promise<PrivateKey | PublicKey> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    throw ioError(`read key ${path}`, err);
  }
  return parseKey(text, path);
}

/** Reads a key file that must hold a private key. */
export async function loadPrivateKeyFile(path: string): Promise<PrivateKey> {
  const key = await loadKeyFile(path);
  if (key.kind !== 'private') throw new FastPatchError('BAD_KEY_FILE', `${path}: holds a public key; signing needs the private key`);
  return key;
}

/**
 * Writes `path` (private, mode 0600) and `path.pub` (public). Refuses, before writing either, if
 * one of them exists, unless `force`; each file is written to a temporary name and renamed, so a
 * replaced private key never keeps the old file's permissions. Throws FastPatchError('IO').
 */
export async function writeKeyPair(path: string, key: PrivateKey, force = false): Promise<{ privatePath: string; publicPath: string }> {
  const publicPath = `${path}.pub`;
  if (!force) {
    for (const p of [path, publicPath]) {
      const exists = await fsp.access(p).then(() => true, () => false);
      if (exists) throw new FastPatchError('IO', `refusing to overwrite ${p} (EEXIST); use --force to replace the key pair`);
    }
  }
  await writeAtomically(path, formatPrivateKey(key), 0o600);
  await writeAtomically(publicPath, formatPublicKey(key), 0o644);
  return { privatePath: path, publicPath };
}

async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await fsp.writeFile(tmp, text, { mode, flag: 'wx' });
    await fsp.chmod(tmp, mode); // the umask may have narrowed or widened nothing, but be exact
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw ioError(`write key ${path}`, err);
  }
}
