/**
 * The device's update settings, in the form of Flatcar's /etc/flatcar/update.conf: `KEY=value`
 * lines, `#` comments and blank lines; a value may be wrapped in single or double quotes; a key
 * given twice takes its last value, as the shell reads it. FastPatch's file is
 * /etc/fastpatch/update.conf. Keys FastPatch does not know (GROUP, SERVER, REBOOT_STRATEGY of a
 * Flatcar file) are ignored with a note; a known key with a bad value, or a line that is not
 * `KEY=value`, is refused, naming the file and line.
 *
 * Keys:
 *   UNKNOWN_RELEASE=allow|refuse  what `update` does when the running slot's release is unknown
 *                                 (no slot status record): see UpdateOptions.unknownRelease.
 *   GROUP=name                    the channel (or the server's group) this machine follows: the
 *                                 Omaha `track` (`check`; default stable, as update_engine's).
 *   SERVER=url                    the update service's Omaha endpoint (`check`).
 *
 * As on CoreOS, the image's defaults sit in /usr/share/fastpatch/update.conf and the machine's own
 * settings in /etc/fastpatch/update.conf, which wins key by key (readLayeredUpdateConfig).
 */
import { FastPatchError } from '../errors.js';
import { readSmallFile, untrustedFileProblem } from '../io/safe-files.js';
import { escapeText } from '../text.js';

/** Where `update` looks for its settings when not told (a missing file there is fine). */
export const DEFAULT_UPDATE_CONFIG = '/etc/fastpatch/update.conf';
/** The image's defaults, beneath DEFAULT_UPDATE_CONFIG (read-only /usr on CoreOS). */
export const IMAGE_UPDATE_CONFIG = '/usr/share/fastpatch/update.conf';

/** What `update` does when the running slot's release is unknown: install (allow) or refuse. */
export type UnknownReleasePolicy = 'allow' | 'refuse';
export const UNKNOWN_RELEASE_POLICIES: readonly UnknownReleasePolicy[] = ['allow', 'refuse'];

export interface UpdateConfig {
  /** The file read, or undefined when none was (the default file is absent). */
  path: string | undefined;
  unknownRelease?: UnknownReleasePolicy;
  group?: string;
  server?: string;
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
export async function readUpdateConfig(path?: string, fallback: string = DEFAULT_UPDATE_CONFIG): Promise<UpdateConfig> {
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
      throw new FastPatchError('IO', `update config ${path} (--config) does not exist; give an existing file, or leave --config out to use ${fallback} when present`, { cause });
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
    } else {
      out.notes.push(`${where}: ${escapeText(key.slice(0, 80))} is not a FastPatch setting; ignored`);
    }
  });
  return out;
}

function unquote(value: string): string {
  const m = /^"(.*)"$|^'(.*)'$/.exec(value);
  return m ? (m[1] ?? m[2] ?? '') : value;
}

/**
 * The settings as CoreOS layers them: `image` (default IMAGE_UPDATE_CONFIG) first, then `machine`
 * (default DEFAULT_UPDATE_CONFIG) key by key over it. A missing default file is fine; a file the
 * caller named must exist. Throws as readUpdateConfig.
 */
export async function readLayeredUpdateConfig(paths: { machine?: string; image?: string } = {}): Promise<UpdateConfig & { paths: string[] }> {
  const image = await readUpdateConfig(paths.image, IMAGE_UPDATE_CONFIG);
  const machine = await readUpdateConfig(paths.machine);
  const merged: UpdateConfig & { paths: string[] } = { path: machine.path ?? image.path, paths: [image.path, machine.path].filter((p): p is string => p !== undefined), notes: [...image.notes, ...machine.notes] };
  for (const key of ['unknownRelease', 'group', 'server'] as const) {
    const value = machine[key] ?? image[key];
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  return merged;
}
