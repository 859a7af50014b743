/**
 * The device's update settings, in the form of Flatcar's /etc/flatcar/update.conf: `KEY=value`
 * lines, `#` comments and blank lines; a value may be wrapped in single or double quotes; a key
 * given twice takes its last value, as the shell reads it. FastPatch's file is
 * /etc/fastpatch/update.conf. Keys FastPatch does not know (LOCKSMITHD_ENDPOINT, PCR_POLICY_SERVER of a
 * Flatcar file) are ignored with a note; a known key with a bad value, or a line that is not
 * `KEY=value`, is refused, naming the file and line.
 *
 * Keys:
 *   UNKNOWN_RELEASE=allow|refuse  what `update` does when the running slot's release is unknown
 *                                 (no slot status record): see UpdateOptions.unknownRelease.
 *   GROUP=name                    the channel (or the server's group) this machine follows: the
 *                                 Omaha `track` (`check`; default stable, as update_engine's).
 *   SERVER=url                    the update service's Omaha endpoint (`check`).
 *   REBOOT_STRATEGY=best-effort|etcd-lock|reboot|off
 *                                 how `agent` reboots into an installed update (default
 *                                 best-effort: etcd-lock when etcd answers, else reboot).
 *   LOCKSMITHD_REBOOT_WINDOW_START=HH:MM | Day HH:MM, LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m
 *                                 locksmith's reboot window (fleet/window.ts), both or neither;
 *                                 the unprefixed REBOOT_WINDOW_START/_LENGTH too (the prefixed
 *                                 name wins in a file that has both).
 *   ETCD_ENDPOINTS=http://a:2379,...  the etcd cluster of the reboot semaphore (`agent`).
 *   HEALTH_CHECK=command          run by /bin/sh -c after a reboot into a new release: exit 0 is
 *                                 healthy (default none: healthy once the agent runs).
 *   HEALTH_GRACE=seconds          wait before the health check (default 60).
 *   REBOOT_COMMAND=command        how `agent` reboots (default `systemctl reboot`).
 *   LOCKSMITHD_GROUP=name         the reboot semaphore's group (default: locksmith's default key).
 *
 * As on CoreOS, the image's defaults sit in /usr/share/fastpatch/update.conf and the machine's own
 * settings in /etc/fastpatch/update.conf, which wins key by key (readLayeredUpdateConfig).
 */
import { FastPatchError } from '../errors.js';
// Pure parsers only (no etcd client): the agent's settings are checked where the file is read.
import { parseEndpoints } from '../fleet/endpoints.js';
import { parseGoDuration, parseRebootWindow, parseWindowStart } from '../fleet/window.js';
import { readSmallFile, untrustedFileProblem } from '../io/safe-files.js';
import { escapeText } from '../text.js';

/** Where `update` looks for its settings when not told (a missing file there is fine). */
export const DEFAULT_UPDATE_CONFIG = '/etc/fastpatch/update.conf';
/** The image's defaults, beneath DEFAULT_UPDATE_CONFIG (read-only /usr on CoreOS). */
export const IMAGE_UPDATE_CONFIG = '/usr/share/fastpatch/update.conf';

/** What `update` does when the running slot's release is unknown: install (allow) or refuse. */
export type UnknownReleasePolicy = 'allow' | 'refuse';
export const UNKNOWN_RELEASE_POLICIES: readonly UnknownReleasePolicy[] = ['allow', 'refuse'];

/** How the agent reboots into an installed update (locksmith's REBOOT_STRATEGY). */
export type RebootStrategy = 'best-effort' | 'etcd-lock' | 'reboot' | 'off';
export const REBOOT_STRATEGIES: readonly RebootStrategy[] = ['best-effort', 'etcd-lock', 'reboot', 'off'];

export interface UpdateConfig {
  /** The file read, or undefined when none was (the default file is absent). */
  path: string | undefined;
  unknownRelease?: UnknownReleasePolicy;
  group?: string;
  server?: string;
  rebootStrategy?: RebootStrategy;
  /** The reboot window's start and length as written (checked with fleet/window.ts). */
  rebootWindowStart?: string;
  rebootWindowLength?: string;
  etcdEndpoints?: string[];
  /** LOCKSMITHD_GROUP: the reboot semaphore's group (default: locksmith's default key). */
  lockGroup?: string;
  /** A command line for /bin/sh -c; exit 0 means the new release is healthy. */
  healthCheck?: string;
  /** Seconds to wait after boot before the health check. */
  healthGrace?: number;
  /** A command line for /bin/sh -c that reboots the machine. */
  rebootCommand?: string;
  /** One line per thing ignored (an unknown key), for the caller to show. */
  notes: string[];
}

/** Largest settings file read. */
const CONFIG_MAX_BYTES = 64 * 1024;
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Reads the settings file `path`, or DEFAULT_UPDATE_CONFIG when `path` is undefined. A missing
 * default file gives empty settings; a missing file the caller named is an error. Throws
 * FastPatchError: 'IO' (missing, unreadable, not a regular file, over 64 KiB), 'USAGE' (a bad
 * line or value; a file owned by another user than root or you, or writable by group or others).
 */
export async function readUpdateConfig(path?: string, fallback: string = DEFAULT_UPDATE_CONFIG, flag = '--config'): Promise<UpdateConfig> {
  const file = path ?? fallback;
  let bytes: Buffer;
  try {
    const read = await readSmallFile(file, CONFIG_MAX_BYTES, 'update config');
    // Whoever can write it could allow an unknown release: refused unless root's or yours and not group/other-writable.
    const untrusted = untrustedFileProblem(file, read, 'update config');
    if (untrusted) throw new FastPatchError('USAGE', untrusted);
    bytes = read.bytes;
  } catch (err) {
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
    if (path === undefined && cause?.code === 'ENOENT') return { path: undefined, notes: [] };
    if (path !== undefined && cause?.code === 'ENOENT') {
      throw new FastPatchError('IO', `update config ${path} (${flag}) does not exist; give an existing file, or leave ${flag} out to use ${fallback} when present`, { cause });
    }
    throw err;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FastPatchError('USAGE', `update config ${file} is not UTF-8 text`);
  }
  return { path: file, ...parseUpdateConfig(text, file) };
}

/** Parses the text of a settings file (`name` for messages). Throws FastPatchError('USAGE'). */
export function parseUpdateConfig(text: string, name: string): Omit<UpdateConfig, 'path'> {
  const out: Omit<UpdateConfig, 'path'> = { notes: [] };
  const lines = text.split('\n');
  const prefixed = new Set<string>();
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${name} line ${i + 1}`;
    const eq = line.indexOf('=');
    const key = eq < 0 ? '' : line.slice(0, eq).trim();
    if (eq < 0 || !KEY_RE.test(key)) {
      throw new FastPatchError('USAGE', `${where}: expected KEY=value, got "${escapeText(line.slice(0, 80))}"`);
    }
    const value = unquote(line.slice(eq + 1).trim());
    if (key === 'UNKNOWN_RELEASE') {
      if (!(UNKNOWN_RELEASE_POLICIES as readonly string[]).includes(value)) {
        throw new FastPatchError('USAGE', `${where}: UNKNOWN_RELEASE must be ${UNKNOWN_RELEASE_POLICIES.join(' or ')}, got "${escapeText(value.slice(0, 80))}"`);
      }
      out.unknownRelease = value as UnknownReleasePolicy;
    } else if (key === 'GROUP') {
      if (!GROUP_RE.test(value)) throw new FastPatchError('USAGE', `${where}: GROUP must be 1-64 of a-z A-Z 0-9 . _ -, got "${escapeText(value.slice(0, 80))}"`);
      out.group = value;
    } else if (key === 'SERVER') {
      if (!/^https?:\/\/[^\s]{1,2000}$/.test(value)) throw new FastPatchError('USAGE', `${where}: SERVER must be an http:// or https:// URL, got "${escapeText(value.slice(0, 80))}"`);
      out.server = value;
    } else if (!agentSetting(out, key, value, where, prefixed)) {
      out.notes.push(`${where}: ${escapeText(key.slice(0, 80))} is not a FastPatch setting; ignored`);
    }
  });
  return out;
}

const MAX_COMMAND_CHARS = 4096;

/**
 * The agent's keys (reboot strategy, window, etcd, health check, reboot command) into `out`;
 * false for a key that is none of them. `prefixed` remembers which window keys came with
 * locksmithd's prefix, which wins over the unprefixed name. Throws FastPatchError('USAGE').
 */
function agentSetting(out: Omit<UpdateConfig, 'path'>, key: string, value: string, where: string, prefixed: Set<string>): boolean {
  const bad = (what: string) => new FastPatchError('USAGE', `${where}: ${key} must be ${what}, got "${escapeText(value.slice(0, 80))}"`);
  const windowKey = /^(LOCKSMITHD_)?REBOOT_WINDOW_(START|LENGTH)$/.exec(key);
  if (windowKey) {
    const field = windowKey[2] === 'START' ? 'rebootWindowStart' : 'rebootWindowLength';
    try {
      if (field === 'rebootWindowStart') parseWindowStart(value);
      else parseGoDuration(value);
    } catch (err) {
      throw new FastPatchError('USAGE', `${where}: ${(err as Error).message}`);
    }
    if (windowKey[1] === undefined && prefixed.has(field)) return true;
    if (windowKey[1] !== undefined) prefixed.add(field);
    out[field] = value;
  } else if (key === 'REBOOT_STRATEGY') {
    if (!(REBOOT_STRATEGIES as readonly string[]).includes(value)) throw bad(REBOOT_STRATEGIES.join(', '));
    out.rebootStrategy = value as RebootStrategy;
  } else if (key === 'ETCD_ENDPOINTS') {
    try {
      out.etcdEndpoints = parseEndpoints(value);
    } catch (err) {
      throw new FastPatchError('USAGE', `${where}: ETCD_ENDPOINTS: ${(err as Error).message}`);
    }
  } else if (key === 'HEALTH_CHECK' || key === 'REBOOT_COMMAND') {
    // Run by /bin/sh -c: any shell text, but one line of bounded size with no control characters.
    if (value === '' || value.length > MAX_COMMAND_CHARS || /[\u0000-\u001f\u007f]/.test(value)) throw bad(`a command line of 1-${MAX_COMMAND_CHARS} characters`);
    out[key === 'HEALTH_CHECK' ? 'healthCheck' : 'rebootCommand'] = value;
  } else if (key === 'LOCKSMITHD_GROUP') {
    // The reboot semaphore's group (locksmithd's -group): not GROUP, the channel, so every machine
    // of a cluster shares one semaphore whatever channel it follows.
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(value)) throw bad('1-64 of A-Z a-z 0-9 . _ -');
    out.lockGroup = value;
  } else if (key === 'HEALTH_GRACE') {
    if (!/^\d{1,6}$/.test(value)) throw bad('whole seconds, 0-999999');
    out.healthGrace = Number(value);
  } else {
    return false;
  }
  return true;
}

function unquote(value: string): string {
  const m = /^"(.*)"$|^'(.*)'$/.exec(value);
  return m ? (m[1] ?? m[2] ?? '') : value;
}

const LAYERED_KEYS = ['unknownRelease', 'group', 'server', 'rebootStrategy', 'rebootWindowStart', 'rebootWindowLength', 'etcdEndpoints', 'lockGroup', 'healthCheck', 'healthGrace', 'rebootCommand'] as const;

/**
 * The settings as CoreOS layers them: `image` (default IMAGE_UPDATE_CONFIG) first, then `machine`
 * (default DEFAULT_UPDATE_CONFIG) key by key over it. A missing default file is fine; a file the
 * caller named must exist. Throws as readUpdateConfig.
 */
export async function readLayeredUpdateConfig(paths: { machine?: string; image?: string } = {}): Promise<UpdateConfig & { paths: string[] }> {
  const image = await readUpdateConfig(paths.image, IMAGE_UPDATE_CONFIG, '--image-config');
  const machine = await readUpdateConfig(paths.machine);
  const merged: UpdateConfig & { paths: string[] } = { path: machine.path ?? image.path, paths: [image.path, machine.path].filter((p): p is string => p !== undefined), notes: [...image.notes, ...machine.notes] };
  for (const key of LAYERED_KEYS) {
    const value = machine[key] ?? image[key];
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  // Both or neither, after layering: the image may set a window the machine only moves.
  try {
    parseRebootWindow(merged.rebootWindowStart, merged.rebootWindowLength);
  } catch (err) {
    throw new FastPatchError('USAGE', `${merged.paths.join(' and ') || 'update config'}: ${(err as Error).message}`);
  }
  return merged;
}
