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
 * Writes `path` (private, mode 0600) and `path.pub` (public). Refuses to overwrite unless `force`.
 * Throws FastPatchError('IO').
 */
export async function writeKeyPair(path: string, key: PrivateKey, force = false): Promise<{ privatePath: string; publicPath: string }> {
  const flag = force ? 'w' : 'wx';
  const publicPath = `${path}.pub`;
  try {
    await fsp.writeFile(path, formatPrivateKey(key), { mode: 0o600, flag });
    await fsp.writeFile(publicPath, formatPublicKey(key), { mode: 0o644, flag });
  } catch (err) {
    throw ioError(`write key ${path}`, err);
  }
  return { privatePath: path, publicPath };
}
