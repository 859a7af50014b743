/**
 * The delta corpus build's shell: commands with their output appended to one log file, cached
 * outputs built under a temporary name and renamed into place only when complete, and removal
 * of what an interrupted build left behind without ever crossing into a mounted filesystem.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, promises as fsp, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { progress } from './harness.js';

let logPath = '';

/** Every later command appends its output to `path`; the file is emptied first. */
export async function startLog(path: string): Promise<void> {
  logPath = path;
  await fsp.writeFile(logPath, '');
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a build command with its output appended to the log; a failure quotes the log's tail. */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): void {
  const fd = openSync(logPath || '/dev/null', 'a');
  try {
    writeSync(fd, `\n$ ${commandLine(cmd, args)}\n`);
    execFileSync(cmd, args, { ...options, stdio: ['ignore', fd, fd] });
  } catch (err) {
    throw failure(cmd, err);
  } finally {
    closeSync(fd);
  }
}

/** Like run, but returns the command's stdout (also appended to the log); stderr goes to the log. */
export function capture(cmd: string, args: readonly string[], options: RunOptions = {}): string {
  const fd = openSync(logPath || '/dev/null', 'a');
  try {
    writeSync(fd, `\n$ ${commandLine(cmd, args)}\n`);
    const text = execFileSync(cmd, args, { ...options, stdio: ['ignore', 'pipe', fd], encoding: 'utf8', maxBuffer: 1 << 28 });
    writeSync(fd, text);
    return text;
  } catch (err) {
    throw failure(cmd, err);
  } finally {
    closeSync(fd);
  }
}

function commandLine(cmd: string, args: readonly string[]): string {
  return `${cmd} ${args.length > 12 ? `${args.slice(0, 12).join(' ')} … (${args.length} args)` : args.join(' ')}`;
}

function failure(cmd: string, err: unknown): Error {
  const tail = logPath ? readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n') : '';
  return new Error(`${cmd} failed (${(err as Error).message.split('\n')[0]}); log ${logPath}:\n${tail}`);
}

/** Builds a cached directory under a temporary name and renames it into place when complete. */
export async function ensureDir(path: string, build: (tmp: string) => Promise<void>): Promise<void> {
  if (existsSync(path)) return;
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await build(tmp);
    await fsp.rename(tmp, path);
  } finally {
    if (existsSync(tmp)) removeTree(tmp);
  }
}

/** Unmounts anything mounted under `root`, deepest first (debootstrap or a chroot may leave /proc). */
export function unmountUnder(root: string): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const m of mounts.filter((m) => m === root || m.startsWith(`${root}/`)).sort().reverse()) {
    try {
      execFileSync('umount', [m]);
    } catch {
      execFileSync('umount', ['-l', m]); // busy: detach now, the kernel finishes when it is idle
    }
  }
}

/** rm -rf that never crosses into a mounted filesystem (a chroot's /proc, a loop mount). */
export function removeTree(path: string): void {
  unmountUnder(path);
  detachLoops(path);
  execFileSync('rm', ['-rf', '--one-file-system', path]);
}

/** Detaches the loop devices backed by `file` (an interrupted in-place build may leave one). */
function detachLoops(file: string): void {
  const lines = execFileSync('losetup', ['-j', file], { encoding: 'utf8' }).split('\n');
  for (const device of lines.map((l) => l.split(':')[0]!).filter(Boolean)) execFileSync('losetup', ['-d', device]);
}

/** Removes leftovers of interrupted builds (`delta-*.tmp-PID` whose process is gone). */
export async function removeStale(dir: string): Promise<void> {
  for (const name of await fsp.readdir(dir)) {
    const pid = /^delta-.*\.tmp-(\d+)$/.exec(name)?.[1];
    if (!pid || Number(pid) === process.pid || alive(Number(pid))) continue;
    progress(`delta corpus: removing leftover ${name}`);
    removeTree(join(dir, name));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
