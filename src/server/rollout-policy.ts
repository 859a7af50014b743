/**
 * A group's rollout policy and the one decision it makes: may this machine be granted an update
 * now? Pure: no file, database or network; the store (rollout-store.ts) supplies the counts.
 *
 * The caps are Nebraska's (../shared/reference/fleet-updates.md §1.7: updates per period, updates
 * in progress within a timeout, a pause switch); the wave is Fedora CoreOS's idea (§1.10: a fixed
 * place per machine, so the same canaries go first every time) with the share set by the operator
 * instead of a clock; the self-pause on failures and rollbacks is what Nebraska lacks (§5.2).
 * docs/ROLLOUT.md describes every field and the wave formula byte by byte.
 */
import { createHash } from 'node:crypto';
import { ERROR_CODE_ROLLBACK, EVENT_RESULT, EVENT_TYPE } from '../omaha/codes.js';

/** The rollout policy of one group of machines. */
export interface GroupPolicy {
  /** The group's name: what a device sends as Omaha `track` (update.conf `GROUP=`). */
  name: string;
  /** The repository channel the group follows (a group named like a channel follows it). */
  channel: string;
  /** No machine is granted an update while true. */
  paused: boolean;
  /** '' when not paused; `operator: <text>` or `self: <why>` when paused. */
  pauseReason: string;
  /** 0..100 (default 100): the share of machines, by wave place, offered a new release. */
  openPercent: number;
  /** Updates granted per period; 0 = no cap (default 0). */
  maxPerPeriod: number;
  /** The period of maxPerPeriod, in seconds: 1 s .. 30 days (default 3600). */
  periodSeconds: number;
  /** Machines with an update granted and not finished; 0 = no cap (default 0). */
  maxInProgress: number;
  /** A grant older than this (seconds; 1 s .. 30 days, default 3600) with no final event stops counting as in progress. */
  updateTimeoutSeconds: number;
  /** Failures + rollbacks of the group's current release that pause the group; 0 = never (default 3). */
  failureThreshold: number;
}

/** Longest group, channel, machine id or version the server keeps (the Omaha parser's attribute bound). */
export const MAX_NAME_CHARS = 256;
/** Longest pause reason kept. */
export const MAX_REASON_CHARS = 1024;
/** Longest period or update timeout: 30 days, in seconds. */
export const MAX_PERIOD_SECONDS = 30 * 24 * 3600;
/** Largest count a cap or threshold may be set to. */
export const MAX_COUNT = 1_000_000_000;

/** The policy of a new group: open to all, no caps, self-pause after 3 failures or rollbacks. */
export function defaultPolicy(name: string, channel: string): GroupPolicy {
  const p: GroupPolicy = {
    name, channel, paused: false, pauseReason: '', openPercent: 100,
    maxPerPeriod: 0, periodSeconds: 3600, maxInProgress: 0, updateTimeoutSeconds: 3600, failureThreshold: 3,
  };
  checkPolicy(p);
  return p;
}

/** Throws RangeError when `text` is not a string of 1..max characters; `what` names it. */
export function checkName(text: unknown, what: string, max = MAX_NAME_CHARS): asserts text is string {
  if (typeof text !== 'string') throw new RangeError(`${what} must be a string`);
  if (text.length === 0 || text.length > max) throw new RangeError(`${what} must have 1 to ${max} characters (has ${text.length})`);
}

function checkInteger(value: unknown, what: string, lo: number, hi: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) {
    throw new RangeError(`${what} must be a whole number from ${lo} to ${hi} (is ${String(value)})`);
  }
}

/**
 * Throws RangeError naming the first field out of range: names of 1..256 characters, openPercent
 * a number in 0..100, whole counts in 0..1e9, periods in 1 s .. 30 days, and a pause reason that
 * is '' exactly when not paused (at most 1024 characters).
 */
export function checkPolicy(p: GroupPolicy): void {
  checkName(p.name, 'name');
  checkName(p.channel, 'channel');
  if (typeof p.paused !== 'boolean') throw new RangeError('paused must be true or false');
  if (typeof p.pauseReason !== 'string' || p.pauseReason.length > MAX_REASON_CHARS) throw new RangeError(`pauseReason must be a string of at most ${MAX_REASON_CHARS} characters`);
  if (p.paused !== (p.pauseReason !== '')) throw new RangeError('pauseReason must be given exactly when paused');
  if (typeof p.openPercent !== 'number' || !(p.openPercent >= 0 && p.openPercent <= 100)) throw new RangeError(`openPercent must be a number from 0 to 100 (is ${String(p.openPercent)})`);
  checkInteger(p.maxPerPeriod, 'maxPerPeriod', 0, MAX_COUNT);
  checkInteger(p.periodSeconds, 'periodSeconds', 1, MAX_PERIOD_SECONDS);
  checkInteger(p.maxInProgress, 'maxInProgress', 0, MAX_COUNT);
  checkInteger(p.updateTimeoutSeconds, 'updateTimeoutSeconds', 1, MAX_PERIOD_SECONDS);
  checkInteger(p.failureThreshold, 'failureThreshold', 0, MAX_COUNT);
}

// Fixed for good: changing a byte reshuffles every fleet's canaries.
const WAVE_PREFIX = 'fastpatch-wave\n';

/**
 * A machine's fixed place in every rollout, in [0, 1): the first 48 bits (6 bytes, big-endian) of
 * SHA-256 of the UTF-8 bytes of "fastpatch-wave\n" + the machine id lower-cased, divided by 2^48.
 * Canaries are the lowest places; the same machines are first every time, in every group.
 * Throws RangeError for an id that is not a string of 1..256 characters.
 */
export function wavePlace(machineId: string): number {
  checkName(machineId, 'machineId');
  const digest = createHash('sha256').update(WAVE_PREFIX + machineId.toLowerCase(), 'utf8').digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/** Why a machine is not granted an update now: a stable code and one line for people. */
export type Refusal = { code: 'paused' | 'wave' | 'period-cap' | 'in-progress-cap'; reason: string };

/**
 * Whether a machine at wave `place` ([0, 1)) may be granted now, given the group's counts:
 * grants recorded within the period, and machines in progress (granted, not finished, not timed
 * out). Undefined when it may; otherwise the first refusal in the order paused, wave, period cap,
 * in-progress cap. A machine is in the wave when place < openPercent / 100. Each count is read
 * only when its cap is set and every earlier check passed, so a caller may compute them lazily.
 */
export function decideGrant(p: GroupPolicy, place: number, counts: { grantedInPeriod: number; inProgress: number }): Refusal | undefined {
  if (p.paused) return { code: 'paused', reason: `group ${p.name} is paused (${p.pauseReason})` };
  if (!(place < p.openPercent / 100)) {
    return { code: 'wave', reason: `wave place ${place.toFixed(4)} is outside the ${p.openPercent}% of group ${p.name} open so far` };
  }
  if (p.maxPerPeriod > 0 && counts.grantedInPeriod >= p.maxPerPeriod) {
    return { code: 'period-cap', reason: `${counts.grantedInPeriod} of ${p.maxPerPeriod} updates already granted in group ${p.name} in the last ${p.periodSeconds} s` };
  }
  if (p.maxInProgress > 0 && counts.inProgress >= p.maxInProgress) {
    return { code: 'in-progress-cap', reason: `${counts.inProgress} of at most ${p.maxInProgress} machines of group ${p.name} are updating` };
  }
  return undefined;
}

/** Where a machine stands in its update, as Nebraska's instance states (reference §1.6). */
export type MachineState = 'idle' | 'granted' | 'downloading' | 'downloaded' | 'installed' | 'complete' | 'failed' | 'rolled-back' | 'held';

/** The states of a machine that holds a grant and has not finished (in progress until the update timeout). */
export const IN_PROGRESS_STATES: readonly MachineState[] = ['granted', 'downloading', 'downloaded', 'installed'];

/** An Omaha `<event>` as a device reported it (src/omaha/request.ts OmahaEvent). */
export interface ReportedEvent {
  type: number;
  result: number;
  errorCode?: number;
  previousVersion?: string;
}

// update_engine ORs flag bits into the top four bits of an error code (1<<31 dev mode, 1<<30
// resumed, 1<<29 test image, 1<<28 non-production server; reference §1.4): the code is below them.
const ERROR_FLAG_MASK = 0x0fffffff;

/** Whether a 3/0 event's error code says the machine booted back into the release it updated from (code 44, any flag bits). */
export function isRollback(errorCode: number | undefined): boolean {
  return errorCode !== undefined && (errorCode & ERROR_FLAG_MASK) === ERROR_CODE_ROLLBACK;
}

/**
 * update_engine's codes (reference §1.4) that say the release itself cannot go on this machine: it
 * booted back (44), the payload did not match its hash (10) or its signature (12), postinstall
 * failed (5), the new slot failed its check (15). A machine that reports one is not offered that
 * release again (until `rollout clear-failure`); any other failure (a download cut, 9; an HTTP
 * error, 2000+; a generic 1) is counted as a failure too, but the machine may try again.
 */
const RELEASE_FAILURES = new Set([5, 10, 12, 15, ERROR_CODE_ROLLBACK]);

/** Whether a failure's error code keeps the machine from being offered the release again. */
export function blocksRetry(errorCode: number | undefined): boolean {
  return errorCode !== undefined && RELEASE_FAILURES.has(errorCode & ERROR_FLAG_MASK);
}

/**
 * The state an event moves a machine to, as Nebraska does (reference §1.6): 13/1 downloading,
 * 14/1 downloaded, 3/1 installed (needs a reboot), 3/2 complete (rebooted into the target),
 * 3/0 with error code 44 rolled-back, any other 3/0 failed, 3/9 held. Undefined for any other
 * pair: it is recorded and changes nothing.
 */
export function stateAfter(e: ReportedEvent): MachineState | undefined {
  if (e.type === EVENT_TYPE.UPDATE_DOWNLOAD_STARTED && e.result === EVENT_RESULT.SUCCESS) return 'downloading';
  if (e.type === EVENT_TYPE.UPDATE_DOWNLOAD_FINISHED && e.result === EVENT_RESULT.SUCCESS) return 'downloaded';
  if (e.type !== EVENT_TYPE.UPDATE_COMPLETE) return undefined;
  switch (e.result) {
    case EVENT_RESULT.SUCCESS: return 'installed';
    case EVENT_RESULT.SUCCESS_REBOOT: return 'complete';
    case EVENT_RESULT.ERROR: return isRollback(e.errorCode) ? 'rolled-back' : 'failed';
    case EVENT_RESULT.UPDATE_DEFERRED: return 'held';
    default: return undefined;
  }
}
