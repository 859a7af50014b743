/**
 * How the agent reboots into an installed update (locksmith's strategies,
 * ../shared/reference/fleet-updates.md §2.5-2.6), and the commands it runs:
 *
 *  - `off`: never reboots; the update runs at whatever reboot comes next.
 *  - `reboot`: reboots at once, or when inside the reboot window.
 *  - `etcd-lock`: waits for the window FIRST, then takes a slot of the etcd semaphore, then
 *    reboots. Unlike locksmith (Flatcar #408), a machine outside its window never holds a slot
 *    while it sleeps, so it cannot block a fleet whose other members are inside theirs. While all
 *    slots are held it retries (5 s doubling to 5 min), checking the window again each time.
 *  - `best-effort`: etcd-lock when etcd endpoints are configured and a quorum answers now, else
 *    reboot. The choice is logged and returned, because locksmith's silent fall back to a lockless
 *    reboot is what made its best-effort hard to predict (kops #5407).
 */
import { spawn } from 'node:child_process';
import { FastPatchError } from '../errors.js';
import { EtcdSemaphore } from '../fleet/etcd-semaphore.js';
import type { HolderRecord } from '../fleet/semaphore.js';
import { describeWindow, inWindow, nextWindowStart, type RebootWindow } from '../fleet/window.js';
import { escapeText } from '../text.js';
import type { RebootStrategy } from '../update/config.js';
import { lockRetryDelay } from './schedule.js';

/** locksmith's default endpoint, for etcd-lock when none is configured. */
export const DEFAULT_ETCD_ENDPOINTS: readonly string[] = ['http://127.0.0.1:2379'];

/** What a shell command did: its exit (null when it was killed), whether it timed out, its output's tail. */
export interface CommandResult {
  code: number | null;
  timedOut: boolean;
  /** The last 2000 characters of stdout and stderr together, for a log. */
  output: string;
  ms: number;
}

/**
 * Runs `command` through /bin/sh -c, killing it (SIGKILL, its whole process group) after
 * `timeoutMs`. Never throws for the command's failure: the caller judges the result.
 */
export function runShell(command: string, timeoutMs: number, env: Record<string, string> = {}): Promise<CommandResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL'); // the group: a check that forked must not outlive its deadline
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, timedOut, output: `${output}${err.message}`, ms: Date.now() - t0 });
    });
    // On 'exit', not 'close': a check that leaves a child holding its output open (`daemon & exit
    // 0`) has still answered; the pipes get a moment to drain, then are let go.
    child.on('exit', (code) => {
      clearTimeout(timer);
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        resolve({ code, timedOut, output, ms: Date.now() - t0 });
      }, 50);
    });
  });
}

/** The clock, sleep and log the waiting steps use (injected by tests). */
export interface Waiter {
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  log: (line: string) => void;
}

/** Waits until `now` is inside `window` (at once when there is none or it is open); the ms waited. */
export async function waitForWindow(window: RebootWindow | undefined, w: Waiter): Promise<number> {
  let waited = 0;
  while (window && !inWindow(window, w.now())) {
    const next = nextWindowStart(window, w.now());
    const ms = Math.max(1000, next.getTime() - w.now().getTime());
    w.log(`outside the reboot window (${describeWindow(window)}): waiting until ${next.toString()}`);
    await w.sleep(ms);
    waited += ms;
  }
  return waited;
}

/** The strategy a configured one resolves to now, and why (best-effort asks etcd). */
export async function chooseStrategy(configured: RebootStrategy, endpoints: readonly string[] | undefined, probe: (endpoints: readonly string[]) => Promise<boolean>): Promise<{ chosen: Exclude<RebootStrategy, 'best-effort'>; why: string }> {
  if (configured !== 'best-effort') return { chosen: configured, why: `REBOOT_STRATEGY=${configured}` };
  if (!endpoints || endpoints.length === 0) return { chosen: 'reboot', why: 'best-effort: no etcd endpoints configured (ETCD_ENDPOINTS), so a reboot without a lock' };
  if (await probe(endpoints)) return { chosen: 'etcd-lock', why: `best-effort: etcd at ${endpoints.join(',')} answers, so etcd-lock` };
  return { chosen: 'reboot', why: `best-effort: etcd at ${endpoints.join(',')} does not answer (no quorum), so a reboot without a lock` };
}

/**
 * Takes a slot of `sem` for `id` with `record`, inside the window: waits for the window, tries,
 * and while the slots are all held (or etcd fails) waits 5 s doubling to 5 min and goes round
 * again, so a window that closed meanwhile is waited for again without holding anything.
 * Returns the attempts made. Stops with FastPatchError('IO') when `signal` aborts.
 */
export async function acquireInWindow(sem: EtcdSemaphore, id: string, record: () => HolderRecord, window: RebootWindow | undefined, w: Waiter, signal?: AbortSignal): Promise<{ attempts: number; waitedMs: number }> {
  let waitedMs = 0;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw new FastPatchError('IO', 'stopped while waiting for a reboot slot');
    waitedMs += await waitForWindow(window, w);
    const res = await sem.acquire(id, record()).catch((err: unknown) => ({ error: (err as Error).message }));
    if ('error' in res) {
      w.log(`reboot slot at ${sem.key}: ${escapeText(res.error)}; trying again`);
    } else if (res.refused === undefined) {
      return { attempts: attempt + 1, waitedMs };
    } else {
      w.log(`reboot slot at ${sem.key}: ${escapeText(res.refused)}; trying again`);
    }
    const ms = lockRetryDelay(attempt);
    await w.sleep(ms);
    waitedMs += ms;
  }
}

/** Whether a quorum of `endpoints` answers within `timeoutMs` (best-effort's question). */
export async function etcdAnswers(endpoints: readonly string[], group: string | undefined, timeoutMs: number): Promise<boolean> {
  const sem = new EtcdSemaphore({ endpoints, callTimeoutMs: timeoutMs }, group);
  try {
    return await sem.reachable();
  } finally {
    sem.close();
  }
}
