import { FastPatchError } from '../errors.js';
import { listRepository } from '../release/list.js';
import { RolloutStore, type GroupStatus } from '../server/rollout-store.js';
import type { GroupPolicy } from '../server/rollout-policy.js';
import { escapeText } from '../text.js';
import { print, printJson } from './output.js';

/** Opens the state database for one command and always closes it. */
function withStore<T>(state: string, work: (store: RolloutStore) => T): T {
  const store = RolloutStore.open(state);
  try {
    return work(store);
  } catch (err) {
    if (err instanceof RangeError || err instanceof TypeError) throw new FastPatchError('USAGE', err.message);
    throw err;
  } finally {
    store.close();
  }
}

const clock = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function policyLine(p: GroupPolicy): string {
  const caps = [
    `open ${p.openPercent}%`,
    p.maxPerPeriod > 0 ? `at most ${p.maxPerPeriod} per ${p.periodSeconds} s` : 'no rate cap',
    p.maxInProgress > 0 ? `at most ${p.maxInProgress} in progress` : 'no in-progress cap',
    p.failureThreshold > 0 ? `pauses at ${p.failureThreshold} failures` : 'never pauses itself',
  ];
  return `${p.paused ? `PAUSED (${escapeText(p.pauseReason)})` : 'rolling'}; ${caps.join(', ')}`;
}

function printGroup(g: GroupStatus): void {
  print(`  group ${escapeText(g.policy.name)}: ${policyLine(g.policy)}`);
  print(`    ${escapeText(g.summary)}`);
  const versions = g.versions.map((v) => `${escapeText(v.version)} x${v.machines}`).join(', ');
  print(`    ${g.machines} machine${g.machines === 1 ? '' : 's'}${versions ? `: ${versions}` : ''}; ${g.inProgress} in progress, ${g.grantedInPeriod} granted this period, ${g.inWave} inside the open wave`);
  const states = Object.entries(g.states).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`).join(', ');
  if (states) print(`    states: ${states}`);
  for (const f of g.failures) print(`    ${f.state} ${escapeText(f.machineId)}${f.errorCode !== undefined ? ` code ${f.errorCode}` : ''} at ${clock(f.at)}`);
}

/** `release status`: per channel, its release and every group following it. */
export async function status(dir: string, opts: { state: string; json?: boolean }): Promise<void> {
  const listing = await listRepository(dir);
  const groups = withStore(opts.state, (store) => store.status());
  if (opts.json) return printJson({ channels: listing.channels.map((c) => ({ ...c, groups: groups.filter((g) => g.policy.channel === c.name) })) });
  for (const c of listing.channels) {
    print(`${c.name}: ${c.version ?? '(no release)'}`);
    const following = groups.filter((g) => g.policy.channel === c.name);
    if (following.length === 0) print('  no machine has checked in yet');
    following.forEach(printGroup);
  }
}

export function show(group: string | undefined, opts: { state: string; json?: boolean }): void {
  const groups = withStore(opts.state, (store) => store.status(group));
  if (opts.json) return printJson(groups);
  if (groups.length === 0) print('no groups yet: one is made when a machine first checks in, or with `fastpatch rollout set GROUP --channel C`');
  groups.forEach(printGroup);
}

export function set(group: string, opts: { state: string; channel?: string; open?: number; maxPerPeriod?: number; period?: number; maxInProgress?: number; timeout?: number; failureThreshold?: number; json?: boolean }): void {
  const policy = withStore(opts.state, (store) => {
    const existing = store.findGroup(group);
    if (!existing && opts.channel === undefined) throw new FastPatchError('USAGE', `no group ${escapeText(group)} yet: give --channel to make one`);
    if (!existing) store.group(group, opts.channel!);
    return store.setPolicy(group, {
      ...(opts.channel !== undefined ? { channel: opts.channel } : {}),
      ...(opts.open !== undefined ? { openPercent: opts.open } : {}),
      ...(opts.maxPerPeriod !== undefined ? { maxPerPeriod: opts.maxPerPeriod } : {}),
      ...(opts.period !== undefined ? { periodSeconds: opts.period } : {}),
      ...(opts.maxInProgress !== undefined ? { maxInProgress: opts.maxInProgress } : {}),
      ...(opts.timeout !== undefined ? { updateTimeoutSeconds: opts.timeout } : {}),
      ...(opts.failureThreshold !== undefined ? { failureThreshold: opts.failureThreshold } : {}),
    });
  });
  if (opts.json) return printJson(policy);
  print(`group ${escapeText(group)} (channel ${escapeText(policy.channel)}): ${policyLine(policy)}`);
}

export function pause(group: string, opts: { state: string; reason: string; json?: boolean }): void {
  const policy = withStore(opts.state, (store) => store.pause(group, opts.reason));
  if (opts.json) return printJson(policy);
  print(`group ${escapeText(group)} paused: machines that have not started the release wait; those in progress finish`);
}

export function resume(group: string, opts: { state: string; json?: boolean }): void {
  const policy = withStore(opts.state, (store) => store.resume(group));
  if (opts.json) return printJson(policy);
  print(`group ${escapeText(group)} resumed: ${policyLine(policy)}; failures are counted afresh from now`);
}

export function clearFailure(machineId: string, opts: { state: string; json?: boolean }): void {
  const cleared = withStore(opts.state, (store) => store.clearFailure(machineId));
  if (opts.json) return printJson({ machineId, cleared });
  print(cleared ? `${escapeText(machineId)} may be offered the release it failed again` : `${escapeText(machineId)} has no failure recorded; nothing changed`);
}
