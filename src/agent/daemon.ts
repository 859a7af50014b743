/**
 * `fastpatch agent`: the device daemon. It finishes what the last reboot left, then checks for
 * updates on update_engine's schedule, installs them (check.ts) and reboots into them by the
 * configured strategy (strategy.ts), inside the reboot window:
 *
 *  - after a reboot into the new release: wait the grace, run the health check; healthy: mark the
 *    running slot good, report success (3/2), and only then free this machine's reboot slot, so a
 *    fleet waits for each machine to be healthy, not just up (zincati #239, locksmith's unlock at
 *    start); unhealthy: roll back (the old slot boots next) and reboot, keeping the slot held
 *    while the machine is down again;
 *  - after a fall back to the old slot (the bootloader's, or ours): report the rollback (3/0, 44)
 *    and free the slot.
 *
 * With `once`, one pass: finish, one check, act; the result says what happened.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { HolderRecord } from '../fleet/semaphore.js';
import { parseRebootWindow, describeWindow, inWindow, type RebootWindow } from '../fleet/window.js';
import { escapeText } from '../text.js';
import { readLayeredUpdateConfig, type RebootStrategy } from '../update/config.js';
import { checkForUpdate, type CheckResult } from './check.js';
import { doReboot, releaseSlot, semaphoreOf, type AgentContext, type AgentOptions } from './agent-context.js';

import { readMachineId } from './identity.js';
import { finishBoot, type BootSummary } from './finish.js';
import { readPending } from './pending.js';
import { firstCheckDelay, nextCheckDelay, UPDATE_ENGINE_SCHEDULE } from './schedule.js';
import { acquireInWindow, chooseStrategy, DEFAULT_ETCD_ENDPOINTS, etcdAnswers, waitForWindow } from './strategy.js';

/** The options, defined beside the context they resolve into. */
export type { AgentOptions } from './agent-context.js';

/** What the agent did, JSON-able. */
export interface AgentResult {
  machineId: string;
  /** What the start found and did about the last update. */
  boot: BootSummary;
  /** The last check (its outcome, or why it failed). */
  check?: { outcome: CheckResult['outcome']; running: CheckResult['running']; offered?: CheckResult['offered']; reason?: string; reported: CheckResult['reported'] } | { error: string };
  /** The strategy configured, the one it resolved to, and why (best-effort asks etcd). */
  strategy?: { configured: RebootStrategy; chosen?: Exclude<RebootStrategy, 'best-effort'>; why?: string };
  window?: string;
  reboot: { done: boolean; why: string; at?: string; waitedMs?: number; lock?: { key: string; id: string; record: HolderRecord; attempts: number } };
}

/** Runs the agent; returns when it rebooted, when `once` is done, or when `signal` aborts. Throws FastPatchError for bad settings, and (with `once`) a failed check. */
export async function runAgent(o: AgentOptions): Promise<AgentResult> {
  const ctx = await settings(o);
  try {
    const result: AgentResult = { machineId: ctx.machineId, boot: { state: 'steady' }, strategy: { configured: ctx.strategy }, reboot: { done: false, why: 'no update to reboot into' } };
    if (ctx.window) result.window = describeWindow(ctx.window);
    const boot = await finishBoot(ctx, (reason) => doReboot(ctx, reason));
    result.boot = boot.summary;
    if (boot.rebooted) {
      result.reboot = { done: true, why: boot.summary.state === 'unhealthy' ? 'the new release failed its health check: rolled back' : 'rolled back', at: ctx.w.now().toISOString() };
      return result;
    }
    try {
      if (o.once) return await act(ctx, result, boot.check ?? (await checkForUpdate(ctx.check)));
      return await loop(ctx, result, boot.check);
    } catch (err) {
      if (!o.signal?.aborted) throw err;
      result.reboot = { done: false, why: 'stopped (signal) before a reboot' }; // e.g. while waiting for the window or a slot
      return result;
    }
  } finally {
    ctx.sem?.close();
  }
}

async function settings(o: AgentOptions): Promise<AgentContext> {
  const config = await readLayeredUpdateConfig({ ...(o.config !== undefined ? { machine: o.config } : {}), ...(o.imageConfig !== undefined ? { image: o.imageConfig } : {}) });
  const log = o.log ?? (() => {});
  const strategy = o.strategy ?? config.rebootStrategy ?? 'best-effort';
  const window = o.window === null ? undefined : (o.window ?? parseRebootWindow(config.rebootWindowStart, config.rebootWindowLength));
  const endpoints = o.etcdEndpoints ?? config.etcdEndpoints ?? (strategy === 'etcd-lock' ? [...DEFAULT_ETCD_ENDPOINTS] : undefined);
  const graceSeconds = o.healthGraceSeconds ?? config.healthGrace ?? 60;
  const healthCheck = o.healthCheck === null ? undefined : (o.healthCheck ?? config.healthCheck);
  return {
    o, check: { ...o, log }, strategy, window, endpoints, lockGroup: o.lockGroup ?? config.lockGroup,
    machineId: await readMachineId(o.machineIdFile), healthCheck, graceMs: graceSeconds * 1000,
    healthTimeoutMs: (o.healthTimeoutSeconds ?? 300) * 1000, rebootCommand: o.rebootCommand ?? config.rebootCommand ?? 'systemctl reboot',
    schedule: { ...UPDATE_ENGINE_SCHEDULE, ...o.schedule }, random: o.random ?? Math.random, sem: undefined, releaseOwed: false,
    w: {
      now: o.now ?? (() => new Date()), log,
      sleep: o.sleep ?? ((ms) => sleepFor(ms, undefined, o.signal ? { signal: o.signal } : {})),
    },
  };
}

/** The daemon: checks on the schedule until a reboot or `signal`. */
async function loop(ctx: AgentContext, result: AgentResult, first: CheckResult | undefined): Promise<AgentResult> {
  let failures = 0;
  if (first) await act(ctx, result, first);
  if (result.reboot.done) return result;
  let delay = first ? nextCheckDelay(ctx.schedule, 0, ctx.random()) : firstCheckDelay(ctx.schedule, ctx.random());
  for (;;) {
    if (ctx.o.signal?.aborted) return result;
    ctx.w.log(`next update check in ${Math.round(delay / 1000)} s`);
    try {
      await ctx.w.sleep(delay);
    } catch (err) {
      if (ctx.o.signal?.aborted) return result; // stopped while sleeping
      throw err;
    }
    if (ctx.o.signal?.aborted) return result;
    if (ctx.releaseOwed) await releaseSlot(ctx);
    let check: CheckResult;
    try {
      check = await checkForUpdate(ctx.check);
    } catch (err) {
      failures++;
      result.check = { error: (err as Error).message };
      ctx.w.log(`update check failed (${failures} in a row): ${escapeText((err as Error).message)}`);
      delay = nextCheckDelay(ctx.schedule, failures, ctx.random());
      continue;
    }
    failures = 0;
    await act(ctx, result, check);
    if (result.reboot.done) return result;
    delay = nextCheckDelay(ctx.schedule, 0, ctx.random());
  }
}

/** After a check: nothing, or a reboot into the installed update by the strategy. */
async function act(ctx: AgentContext, result: AgentResult, check: CheckResult): Promise<AgentResult> {
  result.check = { outcome: check.outcome, running: check.running, reported: check.reported, ...(check.offered ? { offered: check.offered } : {}), ...(check.reason ? { reason: check.reason } : {}) };
  if (check.outcome === 'no-update') {
    result.reboot = { done: false, why: 'no update to reboot into' };
    return result;
  }
  const { pending } = await readPending(ctx.recordPath!);
  const to = pending?.to ?? check.offered?.version ?? 'unknown';
  const choice = await chooseStrategy(ctx.strategy, ctx.endpoints, (e) => etcdAnswers(e, ctx.lockGroup, ctx.o.etcdTimeoutMs ?? 5000));
  result.strategy = { configured: ctx.strategy, ...choice };
  ctx.w.log(`${to} is installed; reboot strategy ${choice.chosen} (${choice.why})`);
  if (choice.chosen === 'off') {
    result.reboot = { done: false, why: `REBOOT_STRATEGY=off: ${to} runs after the next reboot, whoever makes it` };
    return result;
  }
  const t0 = ctx.w.now().getTime();
  let lock: AgentResult['reboot']['lock'];
  if (choice.chosen === 'etcd-lock') {
    const sem = semaphoreOf(ctx, 'etcd-lock')!;
    // A slot kept from earlier in this boot (the agent restarted after taking it) must not be
    // held while this machine waits for its window: others inside theirs would wait on it.
    if (ctx.window && !inWindow(ctx.window, ctx.w.now())) await releaseSlot(ctx);
    let record: HolderRecord | undefined;
    const made = () => (record = { release: to, from: pending?.from ?? check.running.version ?? 'unknown', since: ctx.w.now().toISOString(), state: 'rebooting' });
    const got = await acquireInWindow(sem, ctx.machineId, made, ctx.window, ctx.w, ctx.o.signal);
    lock = { key: sem.key, id: ctx.machineId, record: record!, attempts: got.attempts };
    ctx.w.log(`took a reboot slot at ${sem.key} for ${ctx.machineId}`);
  } else {
    await waitForWindow(ctx.window, ctx.w);
  }
  await doReboot(ctx, `into ${to}`, lock !== undefined);
  result.reboot = { done: true, why: `into ${to} (${choice.chosen})`, at: ctx.w.now().toISOString(), waitedMs: ctx.w.now().getTime() - t0, ...(lock ? { lock } : {}) };
  return result;
}
