/**
 * Files FastPatch creates or reads as root, made so that another user cannot redirect them.
 *
 * Every file FastPatch writes is first created under a name nobody can guess (128 random bits),
 * with O_CREAT|O_EXCL|O_NOFOLLOW, in the folder of its final name, then fsynced and renamed into
 * place. A symlink planted at any name we use is never followed: O_EXCL fails on an existing
 * name, symlink or not, and rename(2) replaces a symlink at the final name instead of writing
 * through it. Small files that are read (keys, status records, config) are opened without
 * blocking, must be regular files, and are read up to a size cap, so a FIFO or /dev/zero given
 * where a file is meant is refused at once instead of hanging or filling memory.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fsp, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { FastPatchError, ioError } from '../errors.js';

/** A file created by createTempBeside: write through `handle`, then commitTemp or discardTemp. */
export interface TempFile {
  handle: fsp.FileHandle;
  /** The temporary name (in the final name's folder). */
  path: string;
  /** The name it gets on commitTemp. */
  finalPath: string;
}

const CREATE_EXCLUSIVE = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Temporary files created and not yet committed or discarded, for removeTempFilesSync. */
const pendingTemps = new Set<string>();

/**
 * Removes every temporary file createTempBeside made that was not yet committed or discarded,
 * synchronously, never throwing: for a process about to exit on a signal (Ctrl-C during
 * `generate`), so that it leaves no `.NAME.<hex>.tmp` behind. Final names are never touched.
 */
export function removeTempFilesSync(): void {
  for (const path of pendingTemps) {
    try {
      unlinkSync(path);
    } catch {
      // already gone (renamed into place or removed)
    }
  }
  pendingTemps.clear();
}

/**
 * Creates a new file exclusively: fails with EEXIST on any existing name, a symlink included
 * (never followed). Throws the Node error (callers wrap it with their context).
 */
export function createExclusive(path: string, mode = 0o644): Promise<fsp.FileHandle> {
  return fsp.open(path, CREATE_EXCLUSIVE, mode);
}

/** Folders under which FastPatch creates no file (README): what belongs there is made by the kernel or the system. */
export const NO_NEW_FILES: readonly string[] = ['/dev', '/proc', '/sys', '/run'];

/**
 * Checks that a file may be written at `finalPath` (a name the user gave), before any work:
 * the name is not empty and does not end in "/", no folder is there (rename(2) cannot replace
 * one), its folder exists and is not under /dev, /proc, /sys or /run (NO_NEW_FILES, after
 * resolving symlinks: /dev/shm, /var/run included). Throws FastPatchError: 'USAGE' for a name
 * that can never be written, 'IO' for a missing or unreadable folder. createTempBeside calls it;
 * callers writing several files call it for each before writing the first.
 */
export async function checkNewFilePath(finalPath: string): Promise<void> {
  if (finalPath === '') throw new FastPatchError('USAGE', 'an empty file name was given; give the path of the file to write');
  if (finalPath.endsWith('/')) throw new FastPatchError('USAGE', `${finalPath} ends with "/": give the path of a file to write, not a folder`);
  const existing = await fsp.lstat(finalPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw fileError(`check ${finalPath}`, err);
  });
  if (existing?.isDirectory()) throw new FastPatchError('USAGE', `${finalPath} is a folder: give the path of a file to write (a new name, or one inside it)`);
  const dir = dirname(resolve(finalPath));
  const real = await fsp.realpath(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') throw new FastPatchError('IO', `cannot write ${finalPath}: folder ${dirname(finalPath)} does not exist; create it first`, { cause: err });
    throw fileError(`cannot write ${finalPath}: folder ${dirname(finalPath)}`, err);
  });
  if (NO_NEW_FILES.some((root) => real === root || real.startsWith(`${root}/`))) {
    throw new FastPatchError('USAGE', `cannot write ${finalPath}: FastPatch creates no file under ${NO_NEW_FILES.join(', ')} (its folder is ${real}): a device must exist already; otherwise choose another folder`);
  }
  await checkNoPlantedLinks(dirname(finalPath), `cannot write ${finalPath}`);
}

/**
 * The first symbolic link on the way to `path` that another user may have planted: one in a shared
 * folder (sticky and writable by all, as /tmp) that belongs neither to us nor to the folder's
 * owner. That is the kernel's own rule (fs.protected_symlinks), applied here whatever the sysctl
 * says, for every folder FastPatch writes into: a link to a folder of root's, planted by another
 * user in /tmp, would otherwise redirect root's write. Links root or we made are followed, as are
 * links in folders only trusted users can write. Undefined when there is none.
 */
export async function plantedLink(path: string): Promise<string | undefined> {
  const me = process.getuid?.() ?? 0;
  // Not resolve(): it would take `..` away before the walk, where the kernel takes it after the
  // link before it (a/link/../b is the folder above the link's target, not a/b).
  let todo = (path.startsWith('/') ? path : `${process.cwd()}/${path}`).split('/').filter((p) => p !== '');
  let current = '/';
  for (let links = 0; todo.length > 0; ) {
    const name = todo.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      current = dirname(current);
      continue;
    }
    const next = join(current, name);
    const entry = await fsp.lstat(next).catch(() => undefined);
    if (!entry) return undefined; // the rest does not exist yet: nothing more is followed
    if (!entry.isSymbolicLink()) {
      current = next;
      continue;
    }
    if (++links > 40) return `${path} goes through more than 40 symbolic links`;
    const folder = await fsp.stat(current);
    const shared = (folder.mode & 0o1002) === 0o1002;
    if (shared && entry.uid !== me && entry.uid !== folder.uid) return `${next} is a symbolic link that uid ${entry.uid} made in the shared folder ${current}`;
    const target = await fsp.readlink(next);
    if (target.startsWith('/')) current = '/';
    todo = [...target.split('/').filter((p) => p !== ''), ...todo];
  }
  return undefined;
}

/** Throws FastPatchError('USAGE') when plantedLink finds a link on the way to `path`; `what` starts the message. */
export async function checkNoPlantedLinks(path: string, what: string): Promise<void> {
  const link = await plantedLink(path);
  if (link !== undefined) throw new FastPatchError('USAGE', `${what}: ${link}, which another user could point anywhere; give the real path (realpath) instead`);
}

/**
 * An I/O error as one line naming `what` and the system's reason, without the paths Node puts in
 * its message (they would show the temporary name, `.NAME.<hex>.tmp`, which means nothing to the user).
 */
function fileError(what: string, err: unknown): FastPatchError {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || typeof e.code !== 'string' || e.syscall === undefined) return ioError(what, err);
  const reason = e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2).split(`, ${e.syscall}`)[0] : '';
  return new FastPatchError('IO', `${what}: ${e.code}${reason ? ` (${reason})` : ''}`, { cause: err });
}

/**
 * Creates an empty temporary file in the folder of `finalPath`, named `.NAME.<32 hex>.tmp`,
 * exclusively (createExclusive), with `mode` exactly (the umask does not narrow or widen it).
 * First checks `finalPath` (checkNewFilePath: 'USAGE' for an empty name, a folder, a place under
 * /dev, /proc, /sys or /run). Throws FastPatchError naming `finalPath` (the name the user gave),
 * never the temporary one.
 */
export async function createTempBeside(finalPath: string, mode = 0o644): Promise<TempFile> {
  await checkNewFilePath(finalPath);
  const dir = dirname(finalPath);
  const path = join(dir, `.${basename(finalPath)}.${randomBytes(16).toString('hex')}.tmp`);
  let handle: fsp.FileHandle;
  // Tracked from before it exists: a signal that arrives once it is on disk finds it in the set.
  pendingTemps.add(path);
  try {
    handle = await createExclusive(path, mode);
  } catch (err) {
    pendingTemps.delete(path); // not ours: never removed
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FastPatchError('IO', `cannot write ${finalPath}: folder ${dir} does not exist; create it first`, { cause: err });
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new FastPatchError('IO', `cannot write ${finalPath}: no permission to create files in ${dir} (${code})`, { cause: err });
    throw fileError(`create a file in ${dir} for ${finalPath}`, err);
  }
  try {
    await handle.chmod(mode);
  } catch (err) {
    await handle.close().catch(() => {});
    await fsp.rm(path, { force: true }).catch(() => {});
    pendingTemps.delete(path);
    throw fileError(`set mode of a new file for ${finalPath}`, err);
  }
  return { handle, path, finalPath };
}

/**
 * fsyncs and closes the temporary file, renames it over its final name (atomically: a reader
 * sees the old file or the new one whole) and fsyncs the folder so the rename survives a power
 * cut. With `noReplace`, an existing final name is an error (EEXIST) and the temporary file is
 * removed. Throws FastPatchError('IO').
 */
export async function commitTemp(temp: TempFile, options: { noReplace?: boolean } = {}): Promise<void> {
  try {
    await temp.handle.sync();
    await temp.handle.close();
    if (options.noReplace) {
      // link(2) fails on an existing name (a symlink included) and never follows one: the
      // atomic "rename unless it exists".
      await fsp.link(temp.path, temp.finalPath);
      await fsp.unlink(temp.path);
    } else {
      await fsp.rename(temp.path, temp.finalPath);
    }
    pendingTemps.delete(temp.path);
    await syncFolder(dirname(temp.finalPath));
  } catch (err) {
    await discardTemp(temp);
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FastPatchError('IO', `refusing to overwrite ${temp.finalPath}: it exists (use --force to replace it)`, { cause: err });
    }
    throw fileError(`write ${temp.finalPath}`, err);
  }
}

/** Closes and removes a temporary file; never throws. */
export async function discardTemp(temp: TempFile): Promise<void> {
  await temp.handle.close().catch(() => {});
  await fsp.rm(temp.path, { force: true }).catch(() => {});
  pendingTemps.delete(temp.path);
}

/** Writes `data` to `path` atomically: createTempBeside, write, commitTemp. Throws FastPatchError('IO'). */
export async function writeFileAtomically(path: string, data: string | Uint8Array, options: { mode?: number; noReplace?: boolean } = {}): Promise<void> {
  const temp = await createTempBeside(path, options.mode ?? 0o644);
  try {
    await temp.handle.writeFile(data);
  } catch (err) {
    await discardTemp(temp);
    throw fileError(`write ${path}`, err);
  }
  await commitTemp(temp, options.noReplace ? { noReplace: true } : {});
}

async function syncFolder(dir: string): Promise<void> {
  const handle = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A small file's bytes and the facts readSmallFile checked. */
export interface SmallFile {
  bytes: Buffer;
  /** Permission bits and owner, for callers that check them (a private key's mode). */
  mode: number;
  uid: number;
}

/**
 * Reads a small regular file (a key, a status record, a config file), at most `maxBytes`.
 * Refuses anything else at once: a FIFO or socket (it would block), a device (/dev/zero would be
 * read forever), a folder, a larger file. `what` says what the file is for in errors ("public
 * key", "slot status record"). Throws FastPatchError('IO'), with `code` ENOENT kept as the cause's.
 */
export async function readSmallFile(path: string, maxBytes: number, what: string): Promise<SmallFile> {
  let handle: fsp.FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    handle = await fsp.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FastPatchError('IO', `${what} ${path} does not exist`, { cause: err });
    throw ioError(`open ${what} ${path}`, err);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new FastPatchError('IO', `${what} ${path} is not a regular file (${fileKind(stats)}); give the path of the file itself`);
    if (stats.size > maxBytes) throw new FastPatchError('IO', `${what} ${path} is ${stats.size} bytes, more than the ${maxBytes} such a file can hold; is it the right file?`);
    // The size may change between stat and read: read one byte more than allowed to notice.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw new FastPatchError('IO', `${what} ${path} grew past ${maxBytes} bytes while being read`);
    }
    return { bytes: buffer.subarray(0, length), mode: stats.mode & 0o7777, uid: stats.uid };
  } catch (err) {
    throw err instanceof FastPatchError ? err : ioError(`read ${what} ${path}`, err);
  } finally {
    await handle.close();
  }
}

/**
 * Whether a file that decides what FastPatch trusts may be believed, as ssh's StrictModes: a
 * public key (whoever can write it chooses which payloads verify), the slot status record (it
 * says which release runs: the downgrade check relies on it), update.conf, a private key. Its
 * owner must be root or the user running FastPatch (another owner can change it, or its mode, at
 * any time), and group and others must not be able to write it; with `privateKey`, nor read it.
 * Returns the problem as one line saying what to do, or undefined when the file may be trusted.
 */
export function untrustedFileProblem(path: string, file: Pick<SmallFile, 'mode' | 'uid'>, what: string, options: { privateKey?: boolean } = {}): string | undefined {
  const mode = (file.mode & 0o777).toString(8).padStart(4, '0');
  if (options.privateKey && (file.mode & 0o077) !== 0) {
    return `unprotected ${what} ${path}: mode ${mode} lets group or others read or write it; run chmod 600 ${path}`;
  }
  const me = process.geteuid?.();
  if (me !== undefined && file.uid !== me && file.uid !== 0) {
    const fix = options.privateKey ? `chown ${me} ${path}` : `chown root ${path}; chmod go-w ${path}`;
    return `${what} ${path} is owned by uid ${file.uid}, not by root or you (uid ${me}): its owner could change it at any time; if you trust its content, run ${fix}`;
  }
  if ((file.mode & 0o022) !== 0) {
    const who = (file.mode & 0o020) && (file.mode & 0o002) ? 'group and others' : file.mode & 0o020 ? 'its group' : 'others';
    return `${what} ${path} is writable by ${who} (mode ${mode}): anyone who can write it decides what FastPatch trusts; if you trust its content, run chown root ${path}; chmod go-w ${path}`;
  }
  return undefined;
}

/** "a FIFO", "a folder"...: what a path that is not a regular file is, for messages. */
export function fileKind(stats: import('node:fs').Stats): string {
  if (stats.isDirectory()) return 'a folder';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}
