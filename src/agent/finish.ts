/**
 * What the agent does first on every start: finish the update the last boot left (agent.json,
 * pending.ts). In a new boot running the new release, the release must prove itself before the
 * fleet moves on: a grace period, then the health check; healthy, the running slot is marked good
 * (as flatcar-setgoodroot would), success is reported (the check sends 3/2) and this machine's
 * reboot slot freed; unhealthy, the old slot is made to boot next and the machine reboots into it,
 * its slot still held, so no other machine starts a reboot while this one is down again. In a new
 * boot running the old release (the bootloader fell back, or a failed health check sent it back)
 * the rollback is reported (3/0, code 44) and the slot freed.
 */
import { changeSlots } from '../disk/transaction.js';
import { lock, type HolderRecord } from '../fleet/semaphore.js';
import { markGood } from '../gpt/prioritize.js';
import { escapeText } from '../text.js';
import { findRunningSlot } from '../update/running.js';
import { rollbackSlots, slotName, twoSlots } from '../update/slot-policy.js';
import { FLATCAR_USR_TYPE } from '../gpt/attributes.js';
import { checkForUpdate, type CheckResult } from './check.js';
import { readBootId } from './identity.js';
import { agentRecordPath, readPending, type PendingUpdate } from './pending.js';
import { runningRelease } from './running-release.js';
import { releaseSlot, semaphoreOf, type AgentContext } from './agent-context.js';
import { runShell, type CommandResult } from './strategy.js';

/** What the start found, and what it did. */
export type BootSummary =
  | { state: 'steady'; lockReleased?: boolean }
  | { state: 'reboot-pending'; pending: PendingUpdate }
  | { state: 'confirmed'; release: string; health: HealthSummary; markedGood: string; reported: CheckResult['reported']; lockReleased?: boolean }
  | { state: 'unhealthy'; release: string; health: HealthSummary; rolledBackTo: string; lockHeld: boolean }
  | { state: 'fell-back'; release: string; running: string | undefined; reported: CheckResult['reported']; lockReleased?: boolean };

/** The health check's verdict: none configured, or the command's result. */
export type HealthSummary = { healthy: boolean; command?: string; code?: number | null; timedOut?: boolean; output?: string; graceMs: number };

/**
 * Finishes the last update. `reboot` reboots (unhealthy case). Returns the summary, the check it
 * made (a report rides on an update check, so the caller need not check again) and whether it rebooted.
 */
export async function finishBoot(ctx: AgentContext, reboot: (why: string) => Promise<void>): Promise<{ summary: BootSummary; check?: CheckResult; rebooted: boolean }> {
  const o = ctx.check;
  const running = await runningRelease(o.disk, { ...(o.statusPath !== undefined ? { statusPath: o.statusPath } : {}), ...(o.running !== undefined ? { running: o.running } : {}) });
  ctx.recordPath = agentRecordPath(running.statusPath);
  const { pending, problem } = await readPending(ctx.recordPath);
  if (problem) ctx.w.log(`note: agent record not used: ${problem}`);
  if (!pending) return { summary: { state: 'steady', ...released(await releaseSlot(ctx)) }, rebooted: false };
  if (pending.bootId === (await readBootId(o.bootIdFile))) {
    // Installed in this boot: the reboot has not happened; a slot held is for it.
    return { summary: { state: 'reboot-pending', pending }, rebooted: false };
  }
  if (running.version === pending.to) return confirm(ctx, pending, reboot);
  // The slot first: the report below may wait on an unreachable service, or download a new offer.
  const lockReleased = released(await releaseSlot(ctx));
  // Reports the rollback (3/0, 44), or nothing for a release installed by other means; a service
  // that does not answer now hears it at the next check (the record stays until one is answered).
  const check = await checkForUpdate(o).catch((err: unknown) => {
    ctx.w.log(`rollback not reported yet (the next check reports it): ${escapeText((err as Error).message)}`);
    return undefined;
  });
  if (running.version === pending.from) {
    ctx.w.log(`running ${pending.from} again, not ${pending.to}: reported the rollback`);
    return { summary: { state: 'fell-back', release: pending.to, running: running.version, reported: check?.reported ?? [], ...lockReleased }, ...(check ? { check } : {}), rebooted: false };
  }
  return { summary: { state: 'steady', ...lockReleased }, ...(check ? { check } : {}), rebooted: false };
}

const released = (r: boolean | undefined) => (r === undefined ? {} : { lockReleased: r });

/** In the new release: grace, health check, then confirm or roll back. */
async function confirm(ctx: AgentContext, pending: PendingUpdate, reboot: (why: string) => Promise<void>): Promise<{ summary: BootSummary; check?: CheckResult; rebooted: boolean }> {
  await setRecord(ctx, (r) => ({ ...r, state: 'confirming' }));
  const health = await judge(ctx, pending);
  if (health.healthy) {
    const markedGood = await markRunningGood(ctx);
    ctx.w.log(`${pending.to} is healthy: marked ${markedGood} good`);
    // The slot first: the machine is healthy, and the report below may wait on the service or
    // download the next offer. Then 3/2 with the previous version; a server that does not answer
    // must not keep the slot either: the record stays, so the next check reports it.
    const lockReleased = released(await releaseSlot(ctx));
    const check = await checkForUpdate(ctx.check).catch((err: unknown) => {
      ctx.w.log(`success not reported yet (the next check reports it): ${escapeText((err as Error).message)}`);
      return undefined;
    });
    return { summary: { state: 'confirmed', release: pending.to, health, markedGood, reported: check?.reported ?? [], ...lockReleased }, ...(check ? { check } : {}), rebooted: false };
  }
  const rb = await rollbackSlots(ctx.check.disk, ctx.check.running !== undefined ? { running: ctx.check.running } : {});
  // The record now says where the machine is going: back to the old release.
  const lockHeld = await setRecord(ctx, (r) => ({ ...r, release: pending.from, from: pending.to, state: 'rebooting' }));
  const rolledBackTo = slotName(rb.other);
  ctx.w.log(`${pending.to} failed its health check${health.code !== undefined ? ` (exit ${health.code}${health.timedOut ? ', timed out' : ''})` : ''}: ${rolledBackTo} boots next; ${lockHeld ? 'keeping the reboot slot' : 'no reboot slot held'}`);
  await reboot(`back into ${pending.from} (${rolledBackTo})`);
  return { summary: { state: 'unhealthy', release: pending.to, health, rolledBackTo, lockHeld }, rebooted: true };
}

/** Waits the grace, then runs the health check (none: healthy). */
async function judge(ctx: AgentContext, pending: PendingUpdate): Promise<HealthSummary> {
  if (ctx.graceMs > 0) {
    ctx.w.log(`running ${pending.to}: health check in ${Math.round(ctx.graceMs / 1000)} s`);
    await ctx.w.sleep(ctx.graceMs);
  }
  if (ctx.healthCheck === undefined) return { healthy: true, graceMs: ctx.graceMs };
  const r: CommandResult = await runShell(ctx.healthCheck, ctx.healthTimeoutMs, { FASTPATCH_RELEASE: pending.to, FASTPATCH_PREVIOUS_RELEASE: pending.from });
  if (r.output.trim() !== '') ctx.w.log(`health check output: ${escapeText(r.output.trim().slice(-500))}`);
  return { healthy: r.code === 0 && !r.timedOut, command: ctx.healthCheck, code: r.code, timedOut: r.timedOut, output: r.output.slice(-500), graceMs: ctx.graceMs };
}

/** Marks the running slot good (successful, no tries, top priority), as `gpt mark-good` on it. */
async function markRunningGood(ctx: AgentContext): Promise<string> {
  const typeGuid = FLATCAR_USR_TYPE;
  const { read, entries, slots } = await twoSlots(ctx.check.disk, 'mark-good', { typeGuid });
  const running = await findRunningSlot(ctx.check.disk, entries, slots, typeGuid, read.sectorSize, ctx.check.running);
  await changeSlots(ctx.check.disk, (e) => markGood(e, running.slot.index, { typeGuid }), { typeGuid });
  return slotName(running.slot);
}

/** Changes this machine's holder record, only if it holds a slot; whether it does. Failures are logged, not thrown. */
async function setRecord(ctx: AgentContext, change: (r: HolderRecord) => HolderRecord): Promise<boolean> {
  const sem = semaphoreOf(ctx);
  if (!sem) return false;
  try {
    const r = await sem.update((s) => {
      const current = s.records[ctx.machineId];
      if (!s.holders.includes(ctx.machineId) || !current) return { value: s, changed: false };
      return lock(s, ctx.machineId, change(current));
    });
    return r.value.holders.includes(ctx.machineId);
  } catch (err) {
    ctx.w.log(`could not update the reboot slot record at ${sem.key}: ${escapeText((err as Error).message)}`);
    return false;
  }
}
