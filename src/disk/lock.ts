/**
 * An advisory whole-disk lock for the length of a GPT transaction (gpt-ab-switching.md §5.3):
 * BSD `flock(LOCK_EX)` on the disk node. systemd-udevd skips probing a block device locked this
 * way, and other partitioning tools that follow the same convention (systemd-repart, sfdisk
 * --lock) wait for it or give up, so nobody reads a half-written table or writes one of their own
 * while FastPatch edits.
 *
 * Node has no flock(2). util-linux's flock(1), present on every Linux system that has the other
 * tools FastPatch works with, takes the lock on its own open file description and holds it while
 * its child runs; the child here is `cat`, which ends when we close its stdin, or when this process
 * dies. The lock is therefore never left behind by a crash.
 */
import { spawn } from 'node:child_process';
import { FastPatchError } from '../errors.js';

export interface DiskLock {
  /** False where flock(1) does not exist (not Linux): the edit goes ahead unlocked. */
  held: boolean;
  release(): Promise<void>;
}

/** How long to wait for a lock someone else holds (udev holds its shared lock for milliseconds). */
export const LOCK_WAIT_SECONDS = 5;
const CONFLICT = 75;

/**
 * Takes an exclusive flock on `path` (which must exist). Throws FastPatchError('IO') when another
 * process holds it for longer than `waitSeconds`; `holder` names who that may be in the message
 * (a release repository's lock file is held by another publisher, not by udev).
 */
export function lockDisk(path: string, waitSeconds = LOCK_WAIT_SECONDS, holder = 'another program (a partitioning tool or udev)'): Promise<DiskLock> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'flock',
      ['--exclusive', '--timeout', String(waitSeconds), '--conflict-exit-code', String(CONFLICT), '--no-fork', path, 'sh', '-c', 'echo locked; exec cat >/dev/null'],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let settled = false;
    const exited = new Promise<void>((done) => child.once('close', () => done()));
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout.once('data', () => {
      settled = true;
      resolve({
        held: true,
        release: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      if (err.code === 'ENOENT') resolve({ held: false, release: async () => {} });
      else reject(new FastPatchError('IO', `lock ${path}: ${err.message}`));
    });
    child.once('close', (code) => {
      if (settled) return;
      settled = true;
      reject(
        code === CONFLICT
          ? new FastPatchError('IO', `${path} is locked by ${holder} for more than ${waitSeconds} s; nothing changed`)
          : new FastPatchError('IO', `lock ${path}: ${stderr.trim() || `flock exited with ${code}`}`),
      );
    });
  });
}

/** Runs `work` while holding the disk's lock; the lock is released however `work` ends. */
export async function withDiskLock<T>(path: string, work: () => Promise<T>, waitSeconds = LOCK_WAIT_SECONDS): Promise<T> {
  const lock = await lockDisk(path, waitSeconds);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}
