/**
 * Where a group's rollout stands, for the operator: read from the store's statements inside one
 * read transaction (the store opens it), never on the update-check path.
 */
import { isRollback, MAX_COUNT, wavePlace, type GroupPolicy, type MachineState } from './rollout-policy.js';
import { num, numberOf, text, type Row, type Statements } from './rollout-sql.js';

/** A machine whose latest outcome for the group's current release is a failure or a rollback. */
export interface FailedMachine {
  machineId: string;
  state: 'failed' | 'rolled-back';
  /** The error code it reported (with update_engine's flag bits), when it sent one. */
  errorCode?: number;
  /** When it reported it, ms. */
  at: number;
}

/** One group's rollout, as status() reports it. */
export interface GroupStatus {
  policy: GroupPolicy;
  /** The release being rolled out (the version most recently passed to grant() for the group), since when (ms), and how many machines of the group run it. */
  release?: { version: string; startedAt: number; machines: number };
  /** Machines whose last check-in named this group. */
  machines: number;
  /** Machines per running version, most common first (at most MAX_VERSIONS_LISTED). */
  versions: { version: string; machines: number }[];
  /** Machines per state (every state present, 0 when none). */
  states: Record<MachineState, number>;
  /** Machines granted an update, not finished, granted within the update timeout. */
  inProgress: number;
  /** Grants made within the last period. */
  grantedInPeriod: number;
  /** Machines whose wave place is inside the open share. */
  inWave: number;
  /** Machines that failed or rolled back the release since its count began (at most MAX_FAILURES_LISTED), oldest first. */
  failures: FailedMachine[];
  /** One line: why the rollout stands where it does. */
  summary: string;
}

/** Most versions status() lists per group. */
export const MAX_VERSIONS_LISTED = 20;
/** Most failed machines status() lists per group. */
export const MAX_FAILURES_LISTED = 100;

const NO_STATES: Record<MachineState, number> = {
  idle: 0, granted: 0, downloading: 0, downloaded: 0, installed: 0, complete: 0, failed: 0, 'rolled-back': 0, held: 0,
};

function countOf(row: Row | undefined): number {
  return row === undefined ? 0 : num(row, 'n');
}

function failuresOf(s: Statements, group: string, rollout: Row | undefined): FailedMachine[] {
  if (rollout === undefined) return [];
  const rows = s.failures.all({ grp: group, target: text(rollout, 'version'), baseline: num(rollout, 'baseline'), limit: MAX_FAILURES_LISTED }) as Row[];
  return rows.map((r) => {
    const errorCode = numberOf(r, 'error_code');
    return {
      machineId: text(r, 'machine_id'), state: isRollback(errorCode) ? 'rolled-back' : 'failed',
      ...(errorCode !== undefined ? { errorCode } : {}), at: num(r, 'at'),
    };
  });
}

/** The counts of one group at `now` (ms). */
function countsOf(s: Statements, p: GroupPolicy, now: number) {
  const periodStart = now - p.periodSeconds * 1000;
  const states = { ...NO_STATES };
  for (const r of s.statesOfGroup.all({ grp: p.name }) as Row[]) states[text(r, 'state') as MachineState] = num(r, 'n');
  const ids = (s.machinesOfGroup.all({ grp: p.name }) as Row[]).map((r) => text(r, 'id'));
  return {
    states,
    machines: ids.length,
    inWave: ids.filter((id) => wavePlace(id) < p.openPercent / 100).length,
    versions: (s.versionsOfGroup.all({ grp: p.name, limit: MAX_VERSIONS_LISTED }) as Row[]).map((r) => ({ version: text(r, 'version'), machines: num(r, 'n') })),
    grantedInPeriod: countOf(s.grantsInPeriod.get({ grp: p.name, since: periodStart, limit: MAX_COUNT }) as Row | undefined),
    inProgress: countOf(s.inProgress.get({ grp: p.name, since: now - p.updateTimeoutSeconds * 1000, limit: MAX_COUNT }) as Row | undefined),
    nextSlot: numberOf(s.oldestGrantInPeriod.get({ grp: p.name, since: periodStart }) as Row, 'at'),
  };
}

/** The one-line summary: the first of paused, no release, a cap reached, complete, else the wave. */
function summaryOf(p: GroupPolicy, status: Omit<GroupStatus, 'summary'>, nextSlot: number | undefined): string {
  if (p.paused) return `paused: ${p.pauseReason}`;
  const release = status.release;
  if (release === undefined) return 'no release offered yet';
  const onRelease = release.machines;
  if (p.maxPerPeriod > 0 && status.grantedInPeriod >= p.maxPerPeriod) {
    const until = nextSlot === undefined ? '' : `; the next from ${new Date(nextSlot + p.periodSeconds * 1000).toISOString()}`;
    return `period cap reached: ${status.grantedInPeriod} of ${p.maxPerPeriod} updates granted in the last ${p.periodSeconds} s${until}`;
  }
  if (p.maxInProgress > 0 && status.inProgress >= p.maxInProgress) return `in-progress cap reached: ${status.inProgress} of ${p.maxInProgress} machines updating`;
  if (p.openPercent >= 100 && status.machines > 0 && onRelease === status.machines) return `complete: all ${status.machines} machines run ${release.version}`;
  return `wave ${p.openPercent}% open: ${status.inWave} of ${status.machines} machines in it; ${onRelease} run ${release.version}, ${status.inProgress} updating, ${status.failures.length} failed or rolled back`;
}

/** The status of group `p` at `now` (ms), read through the store's statements. */
export function groupStatus(s: Statements, p: GroupPolicy, now: number): GroupStatus {
  const rollout = s.currentRollout.get({ grp: p.name }) as Row | undefined;
  const { nextSlot, ...counts } = countsOf(s, p, now);
  const release = rollout === undefined ? undefined : {
    version: text(rollout, 'version'), startedAt: num(rollout, 'started_at'),
    machines: countOf(s.machinesOnVersion.get({ grp: p.name, version: text(rollout, 'version') }) as Row | undefined),
  };
  const status: Omit<GroupStatus, 'summary'> = {
    policy: p,
    ...(release !== undefined ? { release } : {}),
    ...counts,
    failures: failuresOf(s, p.name, rollout),
  };
  return { ...status, summary: summaryOf(p, status, nextSlot) };
}
