/**
 * The agent's resolved settings and the few steps both its start (finish.ts) and its loop
 * (daemon.ts) take: the etcd semaphore client, freeing this machine's slot, rebooting.
 */
import { FastPatchError } from '../errors.js';
import { EtcdSemaphore } from '../fleet/etcd-semaphore.js';
import type { RebootWindow } from '../fleet/window.js';
import { escapeText } from '../text.js';
import type { RebootStrategy } from '../update/config.js';
import type { CheckOptions } from './check.js';
import type { CheckSchedule } from './schedule.js';
import { runShell, type Waiter } from './strategy.js';

export interface AgentOptions extends CheckOptions {
  /** One pass (finish, one check, act) instead of the loop. */
  once?: boolean;
  /** Default REBOOT_STRATEGY of update.conf, else best-effort. */
  strategy?: RebootStrategy;
  /** The reboot window; default the update.conf one; null: none. */
  window?: RebootWindow | null;
  /** Default ETCD_ENDPOINTS of update.conf (etcd-lock without any: locksmith's http://127.0.0.1:2379). */
  etcdEndpoints?: string[];
  /** The semaphore's group; default LOCKSMITHD_GROUP of update.conf, else locksmith's default key (not GROUP: machines on any channel share one semaphore). */
  lockGroup?: string;
  /** Deadline of each etcd call (ms, default 5000). */
  etcdTimeoutMs?: number;
  /** Shell command judging a new release healthy (exit 0); default HEALTH_CHECK; null: none (healthy). */
  healthCheck?: string | null;
  /** Seconds to wait before judging; default HEALTH_GRACE, else 60. */
  healthGraceSeconds?: number;
  /** Seconds the health check may take before it counts as failed (default 300). */
  healthTimeoutSeconds?: number;
  /** Shell command that reboots; default REBOOT_COMMAND, else `systemctl reboot`. */
  rebootCommand?: string;
  /** Reboots instead of the command (tests, or a caller with its own way). */
  reboot?: () => Promise<void>;
  /** The check schedule (default update_engine's). */
  schedule?: Partial<CheckSchedule>;
  /** Injected for tests: the clock, sleeping (ms), and a random number in [0, 1). */
  now?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** Stops the loop (between steps, and while sleeping with the default sleep). */
  signal?: AbortSignal;
}

/** The settings of a run, resolved once. */
export interface AgentContext {
  o: AgentOptions;
  check: CheckOptions;
  strategy: RebootStrategy;
  window: RebootWindow | undefined;
  endpoints: string[] | undefined;
  lockGroup: string | undefined;
  machineId: string;
  healthCheck: string | undefined;
  graceMs: number;
  healthTimeoutMs: number;
  rebootCommand: string;
  schedule: CheckSchedule;
  w: Waiter;
  random: () => number;
  sem: EtcdSemaphore | undefined;
  /** The agent record (set by finishBoot). */
  recordPath?: string;
  /** A slot release that failed and is owed (tried again before each check). */
  releaseOwed: boolean;
}

/** The semaphore client, made once; undefined when the strategy uses no etcd. */
export function semaphoreOf(ctx: AgentContext, chosen?: RebootStrategy): EtcdSemaphore | undefined {
  const strategy = chosen ?? ctx.strategy;
  if (strategy === 'off' || strategy === 'reboot' || !ctx.endpoints) return undefined;
  ctx.sem ??= new EtcdSemaphore({ endpoints: ctx.endpoints, ...(ctx.o.etcdTimeoutMs !== undefined ? { callTimeoutMs: ctx.o.etcdTimeoutMs } : {}) }, ctx.lockGroup);
  return ctx.sem;
}

/**
 * Reboots: the injected function, else REBOOT_COMMAND through /bin/sh. A command that fails
 * frees the slot taken for it (`heldSlot`: nobody else should wait on a reboot that is not
 * happening) and throws FastPatchError('IO').
 */
export async function doReboot(ctx: AgentContext, why: string, heldSlot = false): Promise<void> {
  ctx.w.log(`rebooting ${why}`);
  if (ctx.o.reboot) return ctx.o.reboot();
  const r = await runShell(ctx.rebootCommand, 120_000);
  if (r.code === 0) return;
  if (heldSlot) await releaseSlot(ctx);
  throw new FastPatchError('IO', `reboot command \`${escapeText(ctx.rebootCommand)}\` ${r.timedOut ? 'timed out' : `failed (exit ${r.code})`}: ${escapeText(r.output.trim().slice(-300))}`);
}

/** Frees this machine's slot (if held); false (and owed for later) when etcd did not answer. */
export async function releaseSlot(ctx: AgentContext): Promise<boolean | undefined> {
  const sem = semaphoreOf(ctx);
  if (!sem) return undefined;
  try {
    const r = await sem.release(ctx.machineId);
    ctx.releaseOwed = false;
    if (r.changed) ctx.w.log(`freed the reboot slot of ${ctx.machineId} at ${sem.key}`);
    return r.changed;
  } catch (err) {
    ctx.releaseOwed = true;
    ctx.w.log(`could not free the reboot slot at ${sem.key} (tried again before the next check): ${escapeText((err as Error).message)}`);
    return false;
  }
}
