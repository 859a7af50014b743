/**
 * The device's record of what each slot holds (as RAUC's central slot status file, or
 * update_engine's prefs): written by `update` after a slot is filled and flipped, read by the next
 * `update` to know the running slot's release, for downgrade protection and to tell a delta made
 * from another release apart before anything is written.
 *
 * JSON, keyed by the slot's partition unique GUID (stable across renumbering, unique across disks):
 *   { "format": 1, "slots": { "<GUID>": { "version": "2.0.0", "imageHash": "…", "imageSize": N,
 *     "label": "USR-B", "installed": "2026-11-26T00:00:00.000Z" } } }
 * Written to a temporary file, fsynced and renamed over the old one, so a power cut leaves either
 * record whole. A missing or unreadable file means "release unknown": no downgrade check, which
 * `update` reports; nothing else depends on it.
 */
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { ioError } from '../errors.js';

export interface SlotRecord {
  version: string;
  imageHash: string;
  imageSize: number;
  label: string;
  installed: string;
}

export interface SlotStatus {
  format: 1;
  slots: Record<string, SlotRecord>;
}

/** Default place of the record: /var/lib/fastpatch for a device, next to an image file for an image. */
export function defaultStatusPath(disk: string, isBlockDevice: boolean): string {
  return isBlockDevice ? '/var/lib/fastpatch/status.json' : `${disk}.status.json`;
}

/** The record, or an empty one when the file is missing or unreadable (`problem` says why). */
export async function readStatus(path: string): Promise<{ status: SlotStatus; problem?: string }> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { status: empty(), ...(code === 'ENOENT' ? {} : { problem: `cannot read ${path}: ${(err as Error).message}` }) };
  }
  try {
    const parsed = JSON.parse(text) as Partial<SlotStatus>;
    if (parsed.format !== 1 || typeof parsed.slots !== 'object' || parsed.slots === null) throw new Error('not a format 1 status record');
    const slots: Record<string, SlotRecord> = {};
    for (const [guid, r] of Object.entries(parsed.slots)) {
      if (typeof r?.version === 'string') slots[guid.toUpperCase()] = r;
    }
    return { status: { format: 1, slots } };
  } catch (err) {
    return { status: empty(), problem: `${path} is not a valid status record (${(err as Error).message}); slot releases unknown` };
  }
}

/** Replaces the record atomically (temporary file, fsync, rename, fsync of the directory). */
export async function writeStatus(path: string, status: SlotStatus): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${process.pid}.status.tmp`);
  try {
    await fsp.mkdir(dir, { recursive: true });
    const handle = await fsp.open(tmp, 'w', 0o644);
    try {
      await handle.writeFile(`${JSON.stringify(status, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, path);
    const dirHandle = await fsp.open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw ioError(`write slot status ${path}`, err);
  }
}

function empty(): SlotStatus {
  return { format: 1, slots: {} };
}
