/**
 * What the device remembers between a `check` that installed an update and the next one after a
 * reboot: the release it ran, the one it installed, and the boot it installed it in. With it the
 * next check tells the update service what happened, as update_engine does: running the new
 * release in a new boot is success (event 3/2 with the previous version); running the old one in
 * a new boot means the bootloader fell back (3/0, error code 44).
 *
 * The record sits beside the slot status record (agent.json beside status.json), written
 * atomically; like it, a record another user could have written is not believed.
 */
import { dirname, join } from 'node:path';
import { promises as fsp } from 'node:fs';
import { readSmallFile, untrustedFileProblem, writeFileAtomically } from '../io/safe-files.js';
import { checkReleaseVersion } from '../format/manifest.js';

export interface PendingUpdate {
  /** The release running when the update was installed. */
  from: string;
  /** The release installed into the passive slot. */
  to: string;
  /** The boot it was installed in. */
  bootId: string;
  /** The slot it was written to (label, else partition number). */
  slot: string;
  /** ISO 8601 time of the install. */
  at: string;
}

/** The agent record's path for a slot status record's path: agent.json in the same folder, or DISK.agent.json. */
export function agentRecordPath(statusPath: string): string {
  return statusPath.endsWith('.status.json') ? statusPath.replace(/\.status\.json$/, '.agent.json') : join(dirname(statusPath), 'agent.json');
}

/** The pending update, or undefined (none, or a record that cannot be believed: `problem` says why). */
export async function readPending(path: string): Promise<{ pending?: PendingUpdate; problem?: string }> {
  let text: string;
  try {
    const file = await readSmallFile(path, 64 * 1024, 'agent record');
    const untrusted = untrustedFileProblem(path, file, 'agent record');
    if (untrusted) return { problem: untrusted };
    text = file.bytes.toString('utf8');
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return {};
    return { problem: (err as Error).message };
  }
  try {
    const v = JSON.parse(text) as { format?: unknown; pending?: Record<string, unknown> };
    if (v.format !== 1) return { problem: `${path}: not an agent record of format 1` };
    if (v.pending === undefined) return {};
    const p = v.pending;
    const strings = ['from', 'to', 'bootId', 'slot', 'at'].map((k) => p[k]);
    if (strings.some((s) => typeof s !== 'string' || s.length > 256)) return { problem: `${path}: a pending update with a missing or overlong field` };
    const [from, to, bootId, slot, at] = strings as string[];
    checkReleaseVersion(from!);
    checkReleaseVersion(to!);
    return { pending: { from: from!, to: to!, bootId: bootId!, slot: slot!, at: at! } };
  } catch (err) {
    return { problem: `${path}: ${(err as Error).message}` };
  }
}

/** Writes the record (atomically); `undefined` clears the pending update. Throws FastPatchError('IO'). */
export async function writePending(path: string, pending: PendingUpdate | undefined): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomically(path, `${JSON.stringify({ format: 1, ...(pending ? { pending } : {}) }, null, 2)}\n`, { mode: 0o644 });
}
