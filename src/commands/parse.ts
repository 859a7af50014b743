/**
 * Parsers of option values shared by the command definitions (cli.ts and the fleet commands):
 * each turns a bad value into FastPatchError('USAGE') naming the option, so it reads like every
 * other error. Light on purpose: cli.ts loads it before any library module.
 */
import { Option, type Command } from 'commander';
import { FastPatchError } from '../errors.js';
import { escapeText } from '../text.js';

/** A repeatable option's values, in order. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Bytes, or a number with K, M, G or T (powers of 1024), for every size option. */
export function parseSize(value: string, name = '--size'): number {
  const m = /^(\d+)([KMGT]?)$/i.exec(value);
  const n = m ? Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new FastPatchError('USAGE', `${name} expects bytes, or a number with K, M, G or T (e.g. 64G), got "${value}"`);
  return n;
}

/** The download options of every command that takes a URL (verify, apply, update; docs/HTTP.md). */
export function downloadOption(name: 'retries' | 'timeout' | 'min-rate'): Option {
  const flag = `--${name}`;
  const parse = (v: string) => parseInteger(v, flag);
  if (name === 'retries') return new Option('--retries <n>', 'for a URL: failed requests in a row before giving up (default 10)').argParser(parse);
  if (name === 'timeout') return new Option('--timeout <seconds>', 'for a URL: the whole download must end within this time (default: no limit)').argParser(parse);
  return new Option('--min-rate <bytes>', 'for a URL: slower than this many bytes a second over a minute is a drop, retried (default 1024; 0: no minimum)').argParser(parse);
}

/** `--tries`: boot attempts of a slot on trial, the 4 bits GRUB and vboot keep (1-15). */
export function parseTries(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= 15)) throw new FastPatchError('USAGE', `--tries expects 1-15 (boot attempts before the bootloader falls back), got "${value}"`);
  return n;
}

export function parseInteger(value: string, name: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new FastPatchError('USAGE', `${name} expects a whole number, got "${value}"`);
  return n;
}

/** --sector-size: a disk's logical sector size is 512 or 4096 bytes; anything else is bad usage (exit 2). */
export function parseSectorSize(value: string): number {
  const n = parseInteger(value, '--sector-size');
  if (n !== 512 && n !== 4096) throw new FastPatchError('USAGE', `--sector-size must be 512 or 4096, got ${n}`);
  return n;
}

/** A duration: seconds, or a number with s, m, h or d (`90`, `30m`, `1h`, `7d`), as whole seconds. */
export function parseDuration(value: string, name: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(value);
  const n = m ? Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2]!]! : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new FastPatchError('USAGE', `${name} expects a duration: seconds, or a number with s, m, h or d (e.g. 1h), got "${value}"`);
  return n;
}

/** A share in percent, 0-100 (fractions allowed: 0.5 is one machine in 200). */
export function parsePercent(value: string, name: string): number {
  const n = /^\d{1,3}(\.\d{1,4})?%?$/.test(value) ? Number(value.replace('%', '')) : NaN;
  if (!(n >= 0 && n <= 100)) throw new FastPatchError('USAGE', `${name} expects a percentage from 0 to 100, got "${value}"`);
  return n;
}

/** --listen of the servers: `HOST:PORT`, `:PORT` or `PORT` (an IPv6 host in brackets; no host: every address). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)?:)?(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new FastPatchError('USAGE', `--listen expects HOST:PORT (e.g. 0.0.0.0:8080), got "${escapeText(value)}"`);
  return { host: (m[1] ?? '0.0.0.0').replace(/^\[|\]$/g, ''), port };
}

/** The options of a device's update cycle, `check`'s and `agent`'s alike: the disk, the keys, update.conf's overrides, downloads. */
export function addDeviceOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--disk <disk>', 'whole disk holding the A/B slots (image file or block device)')
    .requiredOption('--pubkey <file>', 'trusted public key (repeatable)', collect)
    .option('--server <url>', 'Omaha endpoint (default: SERVER= of update.conf)')
    .option('--group <name>', 'channel or group (default: GROUP= of update.conf, else stable)')
    .option('--config <file>', "the machine's update.conf (default /etc/fastpatch/update.conf when present)")
    .option('--image-config <file>', "the image's defaults (default /usr/share/fastpatch/update.conf when present)")
    .option('--machine-id-file <file>', 'machine id (default /etc/machine-id)')
    .option('--boot-id-file <file>', 'boot id (default /proc/sys/kernel/random/boot_id)')
    .option('--status <file>', 'slot status record (default as `update` finds it)')
    .option('--running <slot>', 'the slot running now (default: the one the bootloader boots)')
    .option('--app-id <id>', 'Omaha app id (default the CoreOS one)')
    .addOption(new Option('--unknown-release <choice>', "when the running slot's release is unknown: refuse (default; or UNKNOWN_RELEASE= of update.conf) or allow").choices(['allow', 'refuse']))
    .addOption(downloadOption('retries')).addOption(downloadOption('timeout')).addOption(downloadOption('min-rate'));
}
