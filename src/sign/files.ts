import { promises as fsp } from 'node:fs';
import { FastPatchError, ioError } from '../errors.js';
import { checkNewFilePath, readSmallFile, untrustedFileProblem, writeFileAtomically, type SmallFile } from '../io/safe-files.js';
import { formatPrivateKey, formatPublicKey, parseKey, type PrivateKey, type PublicKey } from './keys.js';

/** Largest key file read: a key file is ~200 bytes; anything much larger is the wrong file. */
export const MAX_KEY_FILE_SIZE = 4096;

/**
 * Reads and parses a key file (a regular file of at most MAX_KEY_FILE_SIZE bytes; a FIFO or a
 * device is refused at once). A private key must be protected (checkPrivateKeyFile).
 * Throws FastPatchError('IO' | 'BAD_KEY_FILE').
 */
export async function loadKeyFile(path: string): Promise<PrivateKey | PublicKey> {
  const file = await readSmallFile(path, MAX_KEY_FILE_SIZE, 'key file');
  const key = parseKey(file.bytes.toString('utf8'), path);
  if (key.kind === 'private') checkPrivateKeyFile(path, file);
  else checkPublicKeyFile(path, file);
  return key;
}

/** Reads a key file that must hold a private key (a signing key), protected as checkPrivateKeyFile says. */
export async function loadPrivateKeyFile(path: string): Promise<PrivateKey> {
  const key = await loadKeyFile(path);
  if (key.kind !== 'private') throw new FastPatchError('BAD_KEY_FILE', `${path}: holds a public key; signing needs the private key`);
  return key;
}

/**
 * Reads a key file that must hold a public key: a key a device or verifier trusts. A private key
 * file is refused, so signing keys are never copied onto devices to be used as trust keys.
 * Throws FastPatchError('IO' | 'BAD_KEY_FILE').
 */
export async function loadPublicKeyFile(path: string): Promise<PublicKey> {
  const file = await readSmallFile(path, MAX_KEY_FILE_SIZE, 'key file');
  const key = parseKey(file.bytes.toString('utf8'), path);
  if (key.kind !== 'public') {
    throw new FastPatchError('BAD_KEY_FILE', `${path}: holds a private (signing) key, not a public key; give its public key file (keygen wrote it as ${path}.pub): devices must never hold signing keys`);
  }
  checkPublicKeyFile(path, file);
  return key;
}

/**
 * A private key file must be readable and writable by its owner only (as ssh refuses an
 * "UNPROTECTED PRIVATE KEY FILE"): another user who can read it can sign updates, one who can
 * write it can swap in their own key. Its owner must be the user running FastPatch or root: a
 * file another user owns can be changed or re-chmodded by that user at any time, so a root run
 * refuses a key owned by anyone but root. Throws FastPatchError('BAD_KEY_FILE').
 */
export function checkPrivateKeyFile(path: string, file: Pick<SmallFile, 'mode' | 'uid'>): void {
  const problem = untrustedFileProblem(path, file, 'private key file', { privateKey: true });
  if (problem) throw new FastPatchError('BAD_KEY_FILE', problem);
}

/**
 * A public key file decides which payloads are believed: it must be owned by root or the user
 * running FastPatch and not writable by group or others (untrustedFileProblem), or whoever can
 * write it could swap in their own key. Throws FastPatchError('BAD_KEY_FILE').
 */
export function checkPublicKeyFile(path: string, file: Pick<SmallFile, 'mode' | 'uid'>): void {
  const problem = untrustedFileProblem(path, file, 'public key file');
  if (problem) throw new FastPatchError('BAD_KEY_FILE', problem);
}

/**
 * Writes `path` (private, mode 0600) and `path.pub` (public). Refuses, before writing either, if
 * one of them exists (a symlink, even a dangling one, included), unless `force`. Each file is
 * written through a new, exclusively created, unguessably named temporary file renamed into place
 * (io/safe-files.ts), so a symlink planted at any name is never followed and a replaced private key
 * never keeps the old file's permissions. Throws FastPatchError('IO').
 */
export async function writeKeyPair(path: string, key: PrivateKey, force = false): Promise<{ privatePath: string; publicPath: string }> {
  const publicPath = `${path}.pub`;
  // Both names checked before either is written: an empty name, a folder, /dev... is refused
  // before a key is half written.
  await checkNewFilePath(path);
  await checkNewFilePath(publicPath);
  if (!force) {
    for (const p of [path, publicPath]) {
      const exists = await fsp.lstat(p).then(() => true, (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw ioError(`check ${p}`, err);
      });
      if (exists) throw new FastPatchError('IO', `refusing to overwrite ${p}: it exists (EEXIST); use --force to replace the key pair`);
    }
  }
  await writeFileAtomically(path, formatPrivateKey(key), { mode: 0o600, noReplace: !force });
  await writeFileAtomically(publicPath, formatPublicKey(key), { mode: 0o644, noReplace: !force });
  return { privatePath: path, publicPath };
}
