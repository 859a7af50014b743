/**
 * The device's record of what each slot holds (as RAUC's central slot status file, or
 * update_engine's prefs): written by `update` once a slot is filled and verified, before it is set
 * to boot next; read by the next `update` to know the running slot's release, for downgrade
 * protection and to tell a delta made from another release apart before anything is written.
 *
 * The record says what a slot HOLDS, not what boots: an entry is removed before its slot is
 * overwritten, and added once the new image is written and its hash checked. Which slot boots is
 * the GPT's business.
 *
 * JSON, keyed by the slot's partition unique GUID (stable across renumbering, unique across disks):
 *   { "format": 1, "slots": { "<GUID>": { "version": "2.0.0", "imageHash": "…", "imageSize": N,
 *     "label": "USR-B", "installed": "2026-11-26T00:00:00.000Z" } } }
 * Written with writeFileAtomically (an unguessable temporary name created exclusively, fsync,
 * rename, fsync of the folder), so a power cut leaves either record whole and a symlink planted
 * in the folder is never followed. Read with readSmallFile (a size cap; a FIFO or device refused
 * at once) and checked field by field: a record that is not exactly what `update` writes is
 * "unreadable", never half-used.
 */
import { promises as fsp, type Stats } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { FastPatchError, ioError } from '../errors.js';
import { imageSize } from '../io/device.js';
import { fileBase, physicalRanges } from '../io/identity.js';
import { readSmallFile, writeFileAtomically, createTempBeside, discardTemp, untrustedFileProblem, NO_NEW_FILES } from '../io/safe-files.js';

export interface SlotRecord {
  version: string;
  /** Hex block-list hash of the image (64 hex digits), or '' when the writer did not know it. */
  imageHash: string;
  imageSize: number;
  label: string;
  /** ISO 8601 time the image was written. */
  installed: string;
}

export interface SlotStatus {
  format: 1;
  /** By upper-case partition unique GUID. */
  slots: Record<string, SlotRecord>;
}

/**
 * What reading the record found: `found` (a valid record), `missing` (no such file: a first
 * install, or a wiped /var), `unreadable` (a file that is not a valid record, or cannot be read;
 * `problem` says why).
 */
export type StatusState = 'found' | 'missing' | 'unreadable';

/** Largest record read: a few hundred bytes per slot; anything near this is not ours. */
export const STATUS_MAX_BYTES = 1024 * 1024;
/** Most slot entries a record may hold (a disk has 128 GPT entries). */
const MAX_SLOTS = 128;
const GUID_RE = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/i;
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$/;
const HASH_RE = /^([0-9a-f]{64})?$/;
const DEVICE_STATUS_PATH = '/var/lib/fastpatch/status.json';

/**
 * Default place of the record for a disk already known to be a block device or not:
 * /var/lib/fastpatch/status.json for a device, DISK.status.json for an image file.
 * statusPathFor() is the one `update` uses: it also sees through loop devices and symlinks.
 */
export function defaultStatusPath(disk: string, isBlockDevice: boolean): string {
  return isBlockDevice ? DEVICE_STATUS_PATH : `${disk}.status.json`;
}

/**
 * Default place of the record for `disk`, the same whatever name reaches the disk: an image file
 * (by any path or symlink) and a block device that shows all of that file from its start (a loop
 * device, a loop device over that one, ...; io/identity.ts resolves them) both use
 * REALPATH.status.json next to the file; any other block device /var/lib/fastpatch/status.json.
 * A loop device over a deleted file, or over part of a file (an offset, a size limit), shows a
 * disk of its own. Throws FastPatchError('IO') when `disk` cannot be stat'ed.
 */
export async function statusPathFor(disk: string): Promise<string> {
  let stats: Stats;
  try {
    stats = await fsp.stat(disk);
  } catch (err) {
    throw ioError(`stat ${disk}`, err);
  }
  if (!stats.isBlockDevice()) return `${await fsp.realpath(disk)}.status.json`;
  const ranges = await physicalRanges(stats, disk, 0, await imageSize(stats, disk));
  const only = ranges.length === 1 ? ranges[0]! : undefined;
  if (only?.base.startsWith('file ') && only.offset === 0) {
    const file = await fsp.stat(only.name).catch(() => undefined);
    // Still the same file under that name (dev:ino), and all of it (a loop device's size is whole sectors).
    if (file?.isFile() && only.base === fileBase(file) && only.length >= file.size - (file.size % 512)) {
      return `${await fsp.realpath(only.name)}.status.json`;
    }
  }
  return DEVICE_STATUS_PATH;
}

/**
 * Reads the record. A missing file is `missing`; anything else that is not a valid record (too
 * big, not a regular file, not JSON, a field of the wrong type or out of bounds, two entries for
 * one GUID) is `unreadable` with an empty `status` and `problem` saying why. So is a record
 * another user could have written (owned by neither root nor the user running FastPatch, or
 * writable by group or others: untrustedFileProblem), whatever it says. Never throws for the
 * file's content.
 */
export async function readStatus(path: string): Promise<{ status: SlotStatus; state: StatusState; problem?: string }> {
  let text: string;
  try {
    const file = await readSmallFile(path, STATUS_MAX_BYTES, 'slot status record');
    // Another user who can write the record could claim the running slot holds release 0.1 and so
    // let an older release pass the downgrade check: such a record is not believed (as unreadable).
    const untrusted = untrustedFileProblem(path, file, 'slot status record');
    if (untrusted) return { status: empty(), state: 'unreadable', problem: untrusted };
    text = new TextDecoder('utf-8', { fatal: true }).decode(file.bytes);
  } catch (err) {
    const cause = err instanceof FastPatchError ? (err.cause as NodeJS.ErrnoException | undefined) : (err as NodeJS.ErrnoException);
    if (cause?.code === 'ENOENT') return { status: empty(), state: 'missing' };
    const why = err instanceof TypeError ? 'not UTF-8 text' : (err as Error).message;
    return { status: empty(), state: 'unreadable', problem: `cannot read slot status record ${path}: ${why}` };
  }
  try {
    return { status: parseStatus(text), state: 'found' };
  } catch (err) {
    return { status: empty(), state: 'unreadable', problem: `${path} is not a valid slot status record: ${(err as Error).message}` };
  }
}

/** Parses and checks a record's text. Throws Error saying which field is wrong. */
export function parseStatus(text: string): SlotStatus {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('not JSON');
  }
  if (!isPlainObject(parsed)) throw new Error('not a JSON object');
  if (parsed.format !== 1) throw new Error('not format 1');
  const entries = parsed.slots;
  if (!isPlainObject(entries)) throw new Error('"slots" is not an object');
  const keys = Object.keys(entries);
  if (keys.length > MAX_SLOTS) throw new Error(`more than ${MAX_SLOTS} slots`);
  const slots: Record<string, SlotRecord> = {};
  for (const key of keys) {
    if (!GUID_RE.test(key)) throw new Error(`slot key ${JSON.stringify(key.slice(0, 40))} is not a partition GUID`);
    const guid = key.toUpperCase();
    if (Object.hasOwn(slots, guid)) throw new Error(`two entries for slot ${guid}`);
    slots[guid] = slotRecord(entries[key], guid);
  }
  return { format: 1, slots };
}

function slotRecord(r: unknown, guid: string): SlotRecord {
  const bad = (field: string) => new Error(`slot ${guid}: "${field}" missing or out of bounds`);
  if (!isPlainObject(r)) throw bad('entry');
  const { version, imageHash, imageSize, label, installed } = r;
  if (typeof version !== 'string' || !VERSION_RE.test(version)) throw bad('version');
  if (typeof imageHash !== 'string' || !HASH_RE.test(imageHash)) throw bad('imageHash');
  if (typeof imageSize !== 'number' || !Number.isSafeInteger(imageSize) || imageSize < 0) throw bad('imageSize');
  // A GPT label is 36 UTF-16 code units.
  if (typeof label !== 'string' || label.length > 36) throw bad('label');
  if (typeof installed !== 'string' || installed.length > 40 || Number.isNaN(Date.parse(installed))) throw bad('installed');
  return { version, imageHash, imageSize, label, installed };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Replaces the record atomically (writeFileAtomically), creating its folder if needed.
 * Throws FastPatchError('IO') naming `path`.
 */
export async function writeStatus(path: string, status: SlotStatus): Promise<void> {
  await makeFolder(path);
  await writeFileAtomically(path, `${JSON.stringify(status, null, 2)}\n`, { mode: 0o644 });
}

/**
 * Records that a slot now holds an image (written and verified by the caller): for a first
 * install (`apply --slot USR-A`), so that the first `update` knows the running release. Keeps the
 * other slots' entries; refuses (FastPatchError 'IO') to replace a record that exists but is not
 * valid, which needs a look first. `statusPath` defaults to statusPathFor(disk).
 */
export async function recordSlotImage(
  disk: string,
  slot: { uniqueGuid: string; label: string },
  image: { version: string; targetHash: string; targetSize: number },
  statusPath?: string,
): Promise<string> {
  const path = statusPath ?? (await statusPathFor(disk));
  const { status, state, problem } = await readStatus(path);
  if (state === 'unreadable') throw new FastPatchError('IO', `${problem}; not replaced: check it, then move it away`);
  status.slots[slot.uniqueGuid.toUpperCase()] = slotRecordOf(slot, image);
  await writeStatus(path, status);
  return path;
}

/** The record of a slot that now holds `image` (as applyPayload reports it), installed now. */
export function slotRecordOf(slot: { label: string }, image: { version: string; targetHash: string; targetSize: number }): SlotRecord {
  return { version: image.version, imageHash: image.targetHash, imageSize: image.targetSize, label: slot.label, installed: new Date().toISOString() };
}

/**
 * Checks that a record can be written at `path` without changing it: creates its folder if
 * needed, then creates and removes a temporary file beside it. Catches a read-only or missing
 * /var before a slot is touched. Throws FastPatchError('IO').
 */
export async function probeStatusWritable(path: string): Promise<void> {
  await makeFolder(path);
  await discardTemp(await createTempBeside(path));
}

async function makeFolder(path: string): Promise<void> {
  // Each missing folder from the top down, once: Node 20's mkdir({ recursive: true }) loops
  // forever where the kernel says ENOENT for a folder that exists (under /proc).
  const folder = resolve(dirname(path));
  const parts = folder.split(sep).filter((p) => p !== '');
  let current: string = sep;
  for (const part of parts) {
    // Nothing is created under /dev, /proc, /sys or /run (as createTempBeside), a folder neither.
    const real = join(await fsp.realpath(current).catch(() => current), part);
    current = join(current, part);
    if (NO_NEW_FILES.some((root) => real === root || real.startsWith(`${root}/`))) {
      throw new FastPatchError('USAGE', `cannot write slot status record ${path}: FastPatch creates no file under ${NO_NEW_FILES.join(', ')}; choose another place with --status`);
    }
    try {
      await fsp.mkdir(current, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      // Some filesystems say EROFS or EACCES before they say EEXIST.
      if ((await fsp.stat(current).catch(() => undefined))?.isDirectory()) continue;
      throw ioError(`create the folder of slot status record ${path}`, err);
    }
  }
}

function empty(): SlotStatus {
  return { format: 1, slots: {} };
}
