/**
 * The tools the `delta` section compares, and the one way it runs them: every command is a child
 * under /usr/bin/time (peak RSS of the child), in its own process group so that a timeout or
 * Ctrl-C can stop it together with its children, and a failure becomes a one-line message for
 * the table instead of an exception that would end the section (a FastPatch failure must leave
 * the peers' rows standing). Also the small helpers for their figures: file hashes, formatting.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fsp, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DeltaPair } from './delta-corpus.js';
import { median, onInterrupt, progress, timeOnce } from './harness.js';

const MiB = 1024 * 1024;
export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const TIME = '/usr/bin/time';
export const HAVE_TIME = existsSync(TIME);

/**
 * bsdiff's limits: its suffix sort needs ~17× the old image in RAM, and its match scan slows down
 * badly on long runs of equal bytes (the real 64 MiB Debian pair, 37% zero blocks, did not finish
 * in 600 s). 300 s keeps the default run near 20 minutes.
 */
const BSDIFF_MAX_BYTES = 64 * MiB;
const BSDIFF_TIMEOUT_S = 300;
/** Any other command: generous, only there so that a hung tool cannot stall the whole run. */
const TIMEOUT_S = 45 * 60;
/** zstd's largest window (--long=31); --patch-from refuses anything bigger. */
const ZSTD_MAX_BYTES = 2 ** 31;

export interface Command {
  cmd: string;
  args: string[];
}

export type ToolId = 'fastpatch' | 'zstd' | 'xdelta3' | 'bsdiff' | 'full';

export interface Tool {
  id: ToolId;
  /** Markdown, for the table's first column. */
  label: string;
  /** Plain, for the bars. */
  short: string;
  /** Why the tool cannot run on this pair (not installed, too big), or undefined. */
  skip: (pair: DeltaPair) => string | undefined;
  encode: (source: string, target: string, patch: string) => Command;
  decode: (source: string, patch: string, out: string) => Command;
  /** Seconds a command may run before it is killed. */
  timeout: number;
  /** Reads the new image only: a pair with the same new image as an earlier one reuses its figures. */
  targetOnly?: boolean;
}

/** One finished command. */
export interface Run {
  /** Wall seconds, from spawning /usr/bin/time to its exit. */
  seconds: number;
  /** User + system CPU of the child and everything it waited for (threads included). */
  cpuSeconds: number;
  /** User CPU the rest of the machine used meanwhile, in cores (the noise indicator). */
  othersCores: number;
  /** Peak RSS of the child as /usr/bin/time reports it (KiB), if /usr/bin/time is installed. */
  rssKiB: number | undefined;
}

/** A failed command, with a message short enough for a table cell. */
export class CommandError extends Error {
  constructor(message: string, readonly timedOut = false) {
    super(message);
  }
}

function installed(cmd: string): boolean {
  try {
    execFileSync('which', [cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The most telling line of a tool's stderr: the first that says "error", else the last one. */
export function oneLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /error/i.test(l)) ?? lines.at(-1) ?? '(no message on stderr)';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

export interface RunOptions {
  timeout: number;
  /** Untimed `sync` first, so that no run pays for an earlier one's writeback. Default true. */
  sync?: boolean;
  /** Progress lines when the command starts and ends. Default true. */
  log?: boolean;
  /** Where /usr/bin/time writes its figures. */
  scratch: string;
}

/** Runs a command to completion under /usr/bin/time; rejects with a CommandError on failure. */
export async function runTimed(what: string, c: Command, o: RunOptions): Promise<Run> {
  const timeFile = `${o.scratch}/time.out`;
  const [cmd, args] = HAVE_TIME ? [TIME, ['-f', '%e %M', '-o', timeFile, c.cmd, ...c.args]] : [c.cmd, c.args];
  if (o.sync !== false) execFileSync('sync');
  if (o.log !== false) progress(`${what}: started`);
  const t0 = performance.now();
  let failure: CommandError | undefined;
  const sample = await timeOnce(
    () =>
      new Promise<void>((resolve) => {
        // detached: a process group of its own, so that killing -pid also reaches the tool under time.
        const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
        let stderr = '';
        let timedOut = false;
        const kill = () => {
          try {
            if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        };
        const unhook = onInterrupt(kill);
        const timer = setTimeout(() => {
          timedOut = true;
          kill();
        }, o.timeout * 1000);
        child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-16384)));
        const done = (err?: CommandError) => {
          clearTimeout(timer);
          unhook();
          failure = err;
          resolve();
        };
        child.on('error', (e) => done(new CommandError(`${c.cmd}: ${e.message}`)));
        child.on('close', (code, signal) => {
          if (timedOut) done(new CommandError(`did not finish within its ${o.timeout} s budget (killed)`, true));
          else if (code !== 0) done(new CommandError(`exit ${code ?? signal}: ${oneLine(stderr)}`));
          else done();
        });
      }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  if (failure) {
    if (o.log !== false) progress(`${what}: FAILED after ${elapsed.toFixed(1)} s: ${failure.message}`);
    throw failure;
  }
  let rssKiB: number | undefined;
  if (HAVE_TIME) {
    // The last line is ours ("%e %M"); time puts "Command exited with ..." lines above it.
    const m = /(\d+(?:\.\d+)?) (\d+)\s*$/.exec(readFileSync(timeFile, 'utf8'));
    if (m) rssKiB = Number(m[2]);
    await fsp.rm(timeFile, { force: true });
  }
  if (o.log !== false) progress(`${what}: ${sample.seconds.toFixed(1)} s${rssKiB === undefined ? '' : `, peak RSS ${(rssKiB / 1024).toFixed(0)} MiB`}`);
  return { seconds: sample.seconds, cpuSeconds: sample.cpuSeconds, othersCores: sample.othersCores, rssKiB };
}

/** SHA-256 of a whole file, streamed. */
export async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** "12.3" for one run, "12.3 (12.1–12.9)" for several. */
export function fmtSeconds(runs: readonly Run[], pick: (r: Run) => number = (r) => r.seconds): string {
  if (runs.length === 0) return '–';
  const v = runs.map(pick);
  const f = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(1));
  return v.length === 1 ? f(v[0]!) : `${f(median(v))} (${f(Math.min(...v))}–${f(Math.max(...v))})`;
}

export function fmtRss(runs: readonly Run[]): string {
  const v = runs.map((r) => r.rssKiB).filter((x): x is number => x !== undefined);
  return v.length === 0 ? '–' : (Math.max(...v) / 1024).toFixed(0);
}

export interface ToolSet {
  tools: Tool[];
  /** Versions and settings, for the notes above the tables. */
  notes: string[];
}

/** What a command prints, stdout and stderr together, whatever its exit status (xdelta3 prints on stderr). */
function output(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

function version(cmd: string, args: string[], pattern: RegExp): string {
  return pattern.exec(output(cmd, args))?.[1] ?? '?';
}

/** MemAvailable from /proc/meminfo, in bytes. */
function availableMemory(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * The tools in table order: FastPatch (CLI, with the key made by keygen), then its peers, then
 * the no-delta reference. `keyError` makes FastPatch's rows show why there is no key.
 */
export function makeTools(key: string, keyError: string | undefined): ToolSet {
  const notes: string[] = [];
  const missing = (cmd: string, pkg: string) => (installed(cmd) ? undefined : `skipped: \`${cmd}\` is not installed (apt-get install ${pkg})`);
  const node = [process.execPath, CLI];

  const haveZstd = installed('zstd');
  if (haveZstd) {
    notes.push(`zstd ${version('zstd', ['--version'], /v(\d+\.\d+\.\d+)/)}, default threads (one compression worker). It needs no \`--memory\`/\`-M\` here: with \`--patch-from\` it raises its memory limit to the old image's size by itself (up to its 2 GiB ceiling, --long=31), and decoding passes \`--long=31\` so that any window up to 2 GiB is accepted.`);
  }
  // Debian's xdelta3 is normally built with liblzma; fall back to its own djw coder if not.
  let secondary = 'lzma';
  if (installed('xdelta3')) {
    if (!/SECONDARY_LZMA=1/.test(output('xdelta3', ['config']))) {
      secondary = 'djw';
      notes.push('**This xdelta3 build lacks LZMA secondary compression: it runs with `-S djw` instead.**');
    }
    notes.push(`xdelta3 ${version('xdelta3', ['-V'], /Xdelta version (\S+)/)} with \`-S ${secondary}\`; \`-B\` = the old image's size, so the whole old image is one source window (the default 64 MiB window would miss data that moved further).`);
  }
  if (installed('bsdiff')) {
    notes.push(`bsdiff ${version('dpkg-query', ['-W', '-f', '${Version}', 'bsdiff'], /(\S+)/)} only on pairs ≤ ${BSDIFF_MAX_BYTES / MiB} MiB, with a ${BSDIFF_TIMEOUT_S} s budget per command: it needs ~17× the old image in RAM, and its match scan crawls on long runs of equal bytes such as an image's zeroed blocks.`);
  }

  const fastpatch: Tool = {
    id: 'fastpatch',
    label: 'FastPatch `generate --source` / `apply --source` (CLI)',
    short: 'FastPatch',
    skip: () => (!existsSync(CLI) ? `skipped: ${CLI} is missing (npm run build)` : keyError !== undefined ? `failed: keygen: ${keyError}` : undefined),
    encode: (src, tgt, patch) => ({ cmd: node[0]!, args: [node[1]!, 'generate', '--source', src, '--target', tgt, '--key', key, '--version', '2.0.0', '-o', patch] }),
    decode: (src, patch, out) => ({ cmd: node[0]!, args: [node[1]!, 'apply', patch, '--source', src, '--target', out, '--pubkey', `${key}.pub`] }),
    timeout: TIMEOUT_S,
  };
  const zstd: Tool = {
    id: 'zstd',
    label: '`zstd -19 --long=31 --patch-from`',
    short: 'zstd --patch-from',
    skip: (pair) => missing('zstd', 'zstd') ?? (pair.bytes > ZSTD_MAX_BYTES ? 'skipped: zstd --patch-from handles at most 2 GiB' : undefined),
    encode: (src, tgt, patch) => ({ cmd: 'zstd', args: ['-q', '-f', '-19', '--long=31', `--patch-from=${src}`, tgt, '-o', patch] }),
    decode: (src, patch, out) => ({ cmd: 'zstd', args: ['-q', '-f', '-d', '--long=31', `--patch-from=${src}`, patch, '-o', out] }),
    timeout: TIMEOUT_S,
  };
  const xdelta: Tool = {
    id: 'xdelta3',
    label: `\`xdelta3 -9 -S ${secondary} -B <old size>\``,
    short: 'xdelta3',
    skip: () => missing('xdelta3', 'xdelta3'),
    encode: (src, tgt, patch) => ({ cmd: 'xdelta3', args: ['-f', '-9', '-S', secondary, '-B', String(sizeOf(src)), '-e', '-s', src, tgt, patch] }),
    decode: (src, patch, out) => ({ cmd: 'xdelta3', args: ['-f', '-d', '-B', String(sizeOf(src)), '-s', src, patch, out] }),
    timeout: TIMEOUT_S,
  };
  const bsdiff: Tool = {
    id: 'bsdiff',
    label: '`bsdiff` / `bspatch`',
    short: 'bsdiff',
    skip: (pair) => {
      const why = missing('bsdiff', 'bsdiff') ?? missing('bspatch', 'bsdiff');
      if (why) return why;
      if (pair.bytes > BSDIFF_MAX_BYTES) return `skipped: bsdiff runs only on pairs ≤ ${BSDIFF_MAX_BYTES / MiB} MiB (~17× the old image in RAM, slow on large images)`;
      const need = 17 * sizeOf(pair.source);
      if (need > 0.9 * availableMemory()) return `skipped: bsdiff would need ~${(need / MiB).toFixed(0)} MiB of RAM, ${(availableMemory() / MiB).toFixed(0)} MiB available`;
      return undefined;
    },
    encode: (src, tgt, patch) => ({ cmd: 'bsdiff', args: [src, tgt, patch] }),
    decode: (src, patch, out) => ({ cmd: 'bspatch', args: [src, out, patch] }),
    timeout: BSDIFF_TIMEOUT_S,
  };
  const full: Tool = {
    id: 'full',
    label: '`zstd -19` of the new image alone (no delta, reference)',
    short: 'zstd -19 of the new image',
    skip: () => missing('zstd', 'zstd'),
    encode: (_src, tgt, patch) => ({ cmd: 'zstd', args: ['-q', '-f', '-19', tgt, '-o', patch] }),
    decode: (_src, patch, out) => ({ cmd: 'zstd', args: ['-q', '-f', '-d', patch, '-o', out] }),
    timeout: TIMEOUT_S,
    targetOnly: true,
  };
  if (!HAVE_TIME) notes.push('**/usr/bin/time is missing (apt-get install time): no peak RSS figures.**');
  return { tools: [fastpatch, zstd, xdelta, bsdiff, full], notes };
}

function sizeOf(path: string): number {
  return statSync(path).size;
}
