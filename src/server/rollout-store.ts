/**
 * The update server's rollout state: groups and their policies, machines and their update
 * states, grants and events, in one SQLite file (node:sqlite, rollout-db.ts). Every method is one
 * transaction, committed before it returns, so a server restart (kill -9 included) loses nothing
 * and an operator CLI can share the file with the running server. docs/ROLLOUT.md has the rules.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { FastPatchError, ioError } from '../errors.js';
import { openDatabase } from './rollout-db.js';
import {
  checkName, checkPolicy, decideGrant, defaultPolicy, IN_PROGRESS_STATES, isRollback, MAX_NAME_CHARS, MAX_REASON_CHARS,
  MAX_PERIOD_SECONDS, blocksRetry, stateAfter, wavePlace, type GroupPolicy, type Refusal, type ReportedEvent,
} from './rollout-policy.js';
import {
  eventOf, machineOf, num, policyOf, policyParams, prepareStatements, text, type EventRow, type MachineRow, type Row, type Statements,
} from './rollout-sql.js';
import { groupStatus, type GroupStatus } from './rollout-status.js';

export type { MachineState, ReportedEvent } from './rollout-policy.js';
export type { EventRow, MachineRow } from './rollout-sql.js';
export type { FailedMachine, GroupStatus } from './rollout-status.js';

/** What a device says about itself on every request (from its Omaha `<app>`). */
export interface MachineCheck {
  /** /etc/machine-id; compared lower-cased, as its wave place is. */
  machineId: string;
  /** Its group: Omaha `track`. */
  group: string;
  /** The channel the server resolved for that group (a new group follows it). */
  channel: string;
  /** The release it runs. */
  version: string;
  bootId: string;
  oem?: string;
  /** When, in ms since the epoch; default the store's clock. */
  at?: number;
}

/** The answer of grant(): granted, or refused with a code (a Refusal's, 'failed-before' or 'up-to-date') and one line. */
export type GrantAnswer = { granted: true } | { granted: false; code: Refusal['code'] | 'failed-before' | 'up-to-date'; reason: string };

/** Most events one recordEvents call takes (the Omaha parser's per-app bound). */
export const MAX_EVENTS_PER_CALL = 16;
/** Events kept per machine; older ones are deleted as new ones arrive. */
export const EVENTS_KEPT_PER_MACHINE = 32;
/** Most events events() returns. */
export const MAX_EVENTS_LISTED = 1000;
// Machines named in a self-pause reason; the rest are counted ("and N more").
const MACHINES_IN_REASON = 5;
const SETTABLE = ['channel', 'openPercent', 'maxPerPeriod', 'periodSeconds', 'maxInProgress', 'updateTimeoutSeconds', 'failureThreshold'] as const;

interface Checked { id: string; group: string; channel: string; version: string; bootId: string; oem: string; at: number }

function checkText(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length > MAX_NAME_CHARS) throw new RangeError(`${what} must be a string of at most ${MAX_NAME_CHARS} characters`);
  return value;
}

function checkTime(at: unknown, what: string): number {
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) throw new RangeError(`${what} must be a time in whole ms since the epoch`);
  return at;
}

/** Checks a MachineCheck from the network (hostile: lengths are checked again here). */
function checkMachine(m: MachineCheck, now: () => number): Checked {
  if (typeof m !== 'object' || m === null) throw new TypeError('the machine must be an object');
  checkName(m.machineId, 'machineId');
  const id = m.machineId.toLowerCase();
  checkName(id, 'machineId');
  checkName(m.group, 'group');
  checkName(m.channel, 'channel');
  checkName(m.version, 'version');
  const oem = m.oem === undefined ? '' : checkText(m.oem, 'oem');
  return { id, group: m.group, channel: m.channel, version: m.version, bootId: checkText(m.bootId, 'bootId'), oem, at: checkTime(m.at ?? now(), 'at') };
}

function checkEvents(events: readonly ReportedEvent[]): void {
  if (!Array.isArray(events) || events.length > MAX_EVENTS_PER_CALL) throw new RangeError(`events must be an array of at most ${MAX_EVENTS_PER_CALL}`);
  for (const e of events) {
    for (const key of ['type', 'result', 'errorCode'] as const) {
      const v = e[key];
      if ((v !== undefined || key !== 'errorCode') && !Number.isSafeInteger(v)) throw new RangeError(`event ${key} must be a whole number`);
    }
    if (e.previousVersion !== undefined) checkText(e.previousVersion, 'previousVersion');
  }
}

/** "self: 3 of 3 failures/rollbacks of 1.3.0: m1 code 9, m2 code 44 (rollback), ..." within MAX_REASON_CHARS. */
function selfPauseReason(version: string, threshold: number, failures: Row[]): string {
  const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}...` : s);
  const named = failures.slice(0, MACHINES_IN_REASON).map((r) => {
    const code = r['error_code'];
    const what = typeof code === 'number' ? `code ${code}${isRollback(code) ? ' (rollback)' : ''}` : 'no code';
    return `${cut(text(r, 'machine_id'), 40)} ${what}`;
  });
  const more = failures.length > MACHINES_IN_REASON ? `, and ${failures.length - MACHINES_IN_REASON} more` : '';
  return `self: ${failures.length} of ${threshold} failures/rollbacks of ${cut(version, 64)}: ${named.join(', ')}${more}`.slice(0, MAX_REASON_CHARS);
}

/** The rollout state in an SQLite file: one instance per process, synchronous, one transaction per call. */
export class RolloutStore {
  readonly #db: DatabaseSync;
  readonly #s: Statements;
  readonly #now: () => number;

  private constructor(db: DatabaseSync, s: Statements, now: () => number) {
    this.#db = db;
    this.#s = s;
    this.#now = now;
  }

  /**
   * Opens the database at `path`, creating it (mode 0600) when missing. `now` is the clock in ms
   * (default Date.now), for tests. Throws FastPatchError('USAGE') for a symlink, a file others may
   * write, another kind of database or a newer schema; FastPatchError('IO') when it cannot be opened.
   */
  static open(path: string, options: { now?: () => number } = {}): RolloutStore {
    const db = openDatabase(path);
    try {
      return new RolloutStore(db, prepareStatements(db), options.now ?? Date.now);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Closes the database; later calls throw. Closing twice is harmless. */
  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #transaction<T>(begin: StatementSync, fn: () => T): T {
    try {
      begin.run();
      const result = fn();
      this.#s.commit.run();
      return result;
    } catch (err) {
      if (this.#db.isOpen && this.#db.isTransaction) this.#s.rollback.run();
      // SQLite's own failures (busy past the timeout, disk full, I/O) as one IO line; ours pass as they are.
      if ((err as NodeJS.ErrnoException).code === 'ERR_SQLITE_ERROR') throw ioError('rollout database', err);
      throw err;
    }
  }

  #write<T>(fn: () => T): T {
    return this.#transaction(this.#s.begin, fn);
  }

  #read<T>(fn: () => T): T {
    return this.#transaction(this.#s.beginRead, fn);
  }

  #group(name: string): GroupPolicy | undefined {
    const row = this.#s.group.get({ name }) as Row | undefined;
    return row === undefined ? undefined : policyOf(row);
  }

  #existing(name: string): GroupPolicy {
    checkName(name, 'group');
    const p = this.#group(name);
    if (p === undefined) throw new FastPatchError('USAGE', `no rollout group is named ${JSON.stringify(name)}`);
    return p;
  }

  #update(p: GroupPolicy): GroupPolicy {
    checkPolicy(p);
    this.#s.updateGroup.run(policyParams(p));
    return p;
  }

  #ensureGroup(name: string, channel: string): GroupPolicy {
    const existing = this.#group(name);
    if (existing !== undefined) return existing;
    const p = defaultPolicy(name, channel);
    this.#s.insertGroup.run(policyParams(p));
    return p;
  }

  #checkIn(c: Checked): void {
    this.#s.upsertMachine.run({ id: c.id, grp: c.group, channel: c.channel, version: c.version, bootId: c.bootId, oem: c.oem, at: c.at });
  }

  /** The group's policy; created with defaultPolicy(name, channel) when new. RangeError for a bad name. */
  group(name: string, channel: string): GroupPolicy {
    checkName(name, 'group');
    checkName(channel, 'channel');
    // Asked on every update check: a read when the group exists, a write transaction only to make it.
    return this.#group(name) ?? this.#write(() => this.#ensureGroup(name, channel));
  }

  /** The group's policy, or undefined when there is no such group. */
  findGroup(name: string): GroupPolicy | undefined {
    checkName(name, 'group');
    return this.#group(name);
  }

  /** Every group's policy, by name. */
  groups(): GroupPolicy[] {
    return (this.#s.groups.all() as Row[]).map(policyOf);
  }

  /**
   * Changes a group's policy fields (not name, paused or pauseReason: pause() and resume() do
   * those). RangeError for another field or a value out of range (checkPolicy); nothing changes
   * then. FastPatchError('USAGE') for an unknown group.
   */
  setPolicy(name: string, changes: Partial<Omit<GroupPolicy, 'name' | 'paused' | 'pauseReason'>>): GroupPolicy {
    for (const key of Object.keys(changes)) {
      if (!(SETTABLE as readonly string[]).includes(key)) throw new RangeError(`setPolicy cannot change ${key}${key.startsWith('pause') ? ': use pause() or resume()' : ''}`);
    }
    return this.#write(() => this.#update({ ...this.#existing(name), ...changes }));
  }

  /** Pauses the group; `reason` (1..1000 characters) is recorded as `operator: <reason>`, replacing any earlier reason. */
  pause(name: string, reason: string): GroupPolicy {
    checkName(reason, 'reason', MAX_REASON_CHARS - 'operator: '.length);
    return this.#write(() => this.#update({ ...this.#existing(name), paused: true, pauseReason: `operator: ${reason}` }));
  }

  /**
   * Clears the group's pause. Failures of its current release are counted again from now (a new
   * baseline), so the reports that caused a self-pause do not pause it again.
   */
  resume(name: string): GroupPolicy {
    return this.#write(() => {
      const p = this.#update({ ...this.#existing(name), paused: false, pauseReason: '' });
      const rollout = this.#s.currentRollout.get({ grp: name }) as Row | undefined;
      if (rollout !== undefined) this.#s.rebaseRollout.run({ id: num(rollout, 'id') });
      return p;
    });
  }

  /**
   * Records that the machine checked in: its group, channel, version, boot id, oem and time. A
   * machine in progress that now runs the version it was granted is complete. RangeError for a
   * field that is missing or over 256 characters.
   */
  checkIn(m: MachineCheck): void {
    const c = checkMachine(m, this.#now);
    this.#write(() => this.#checkIn(c));
  }

  /**
   * Checks the machine in and records each event (kept per machine with its time, group, version
   * and the target it had been granted), moving its state as stateAfter() says (a 3/2 only from a
   * machine that reports its target); a rollback or a failure of the release itself (blocksRetry)
   * also marks the target as failed for it (grant() refuses it that release), while a transient
   * failure (a download cut) leaves it free to be granted again. When these
   * events bring the group's failures + rollbacks of its current release to failureThreshold,
   * the group is paused in the same transaction and the reason returned as `selfPaused`.
   */
  recordEvents(m: MachineCheck, events: readonly ReportedEvent[]): { selfPaused?: string } {
    const c = checkMachine(m, this.#now);
    checkEvents(events);
    return this.#write(() => {
      this.#checkIn(c);
      const target = text(this.#s.machine.get({ id: c.id }) as Row, 'target');
      let failed = false;
      // 3/2 means "rebooted into the release it was granted": from a machine that still reports
      // another release it is recorded and changes nothing (else it would end its grant and be
      // granted, and counted, again and again).
      const movesTo = (e: ReportedEvent) => {
        const state = stateAfter(e);
        return state === 'complete' && c.version !== target ? undefined : state;
      };
      for (const e of events) {
        this.#s.insertEvent.run({
          id: c.id, at: c.at, grp: c.group, version: c.version, target, type: e.type, result: e.result,
          errorCode: e.errorCode ?? null, previousVersion: e.previousVersion ?? null,
        });
        const state = movesTo(e);
        if (state === 'failed' || state === 'rolled-back') {
          failed = true;
          (blocksRetry(e.errorCode) ? this.#s.setFailed : this.#s.setFailedRetry).run({ id: c.id, state, at: c.at, errorCode: e.errorCode ?? null });
        } else if (state !== undefined) {
          this.#s.setState.run({ id: c.id, state, at: c.at });
        }
      }
      if (events.length > 0) this.#s.pruneEvents.run({ id: c.id, keep: EVENTS_KEPT_PER_MACHINE });
      return failed ? this.#selfPauseIfDue(c.group) : {};
    });
  }

  #selfPauseIfDue(group: string): { selfPaused?: string } {
    const p = this.#group(group);
    if (p === undefined || p.paused || p.failureThreshold === 0) return {};
    const rollout = this.#s.currentRollout.get({ grp: group }) as Row | undefined;
    if (rollout === undefined) return {};
    const version = text(rollout, 'version');
    const failures = this.#s.failures.all({ grp: group, target: version, baseline: num(rollout, 'baseline'), limit: p.failureThreshold }) as Row[];
    if (failures.length < p.failureThreshold) return {};
    const reason = selfPauseReason(version, p.failureThreshold, failures);
    this.#update({ ...p, paused: true, pauseReason: reason });
    return { selfPaused: reason };
  }

  /**
   * Checks the machine in and says whether it may start updating to `version` now. A new version
   * becomes the group's current release (its failures counted from zero); a new group gets the
   * default policy. Refused, in this order: 'up-to-date' (it runs `version`), 'paused',
   * 'failed-before' (it failed or rolled back `version`: not offered again until clearFailure),
   * then the wave and the caps (decideGrant). A machine already granted `version` and still in
   * progress gets it again without counting twice (a resumed download). A grant is recorded
   * (state granted, time, target) and counts toward the caps.
   */
  grant(m: MachineCheck, version: string): GrantAnswer {
    const c = checkMachine(m, this.#now);
    checkName(version, 'version');
    return this.#write(() => {
      this.#checkIn(c);
      const p = this.#ensureGroup(c.group, c.channel);
      const rollout = this.#s.currentRollout.get({ grp: c.group }) as Row | undefined;
      if (rollout === undefined || text(rollout, 'version') !== version) this.#s.insertRollout.run({ grp: c.group, version, at: c.at });
      return this.#decide(p, machineOf(this.#s.machine.get({ id: c.id }) as Row), version, c.at);
    });
  }

  #decide(p: GroupPolicy, machine: MachineRow, version: string, at: number): GrantAnswer {
    const id = machine.machineId;
    if (machine.version === version) return { granted: false, code: 'up-to-date', reason: `${id} already runs ${version}` };
    const none = { grantedInPeriod: 0, inProgress: 0 };
    if (p.paused) return { granted: false, ...decideGrant(p, 0, none)! };
    if (machine.failedVersion === version) {
      return { granted: false, code: 'failed-before', reason: `${id} failed or rolled back ${version} (code ${machine.errorCode ?? 'none'}): not offered it again` };
    }
    const timeoutStart = at - p.updateTimeoutSeconds * 1000;
    const inProgress = IN_PROGRESS_STATES.includes(machine.state) && machine.grantedAt > timeoutStart;
    if (inProgress && machine.target === version) return { granted: true };
    // A machine in progress towards an older release is being granted anew: it is not one of the others.
    const self = inProgress ? 1 : 0;
    // Counting costs up to a cap's worth of index entries: getters, so decideGrant counts only
    // what it compares (nothing for a machine outside the wave, no in-progress count past a full period).
    const s = this.#s;
    const count = (st: StatementSync, params: Record<string, string | number>) => num(st.get(params) as Row, 'n');
    const counts = {
      get grantedInPeriod() { return count(s.grantsInPeriod, { grp: p.name, since: at - p.periodSeconds * 1000, limit: p.maxPerPeriod }); },
      get inProgress() { return count(s.inProgress, { grp: p.name, since: timeoutStart, limit: p.maxInProgress + self }) - self; },
    };
    const refusal = decideGrant(p, wavePlace(id), counts);
    if (refusal !== undefined) return { granted: false, ...refusal };
    this.#s.insertGrant.run({ grp: p.name, id, version, at });
    this.#s.setGranted.run({ id, version, at });
    // Grants older than the longest period ever count for nothing.
    this.#s.pruneGrants.run({ grp: p.name, before: at - MAX_PERIOD_SECONDS * 1000 });
    return { granted: true };
  }

  /** Lets a machine be granted the release it failed or rolled back again. False when the machine is unknown. */
  clearFailure(machineId: string): boolean {
    checkName(machineId, 'machineId');
    return this.#write(() => Number(this.#s.clearFailure.run({ id: machineId.toLowerCase() }).changes) > 0);
  }

  /** How many machines the store knows (a full count: for occasional use, not per request). */
  machineCount(): number {
    return Number((this.#s.machineCount.get() as { n: number | bigint }).n);
  }

  /** One machine as the store knows it, or undefined. */
  machine(machineId: string): MachineRow | undefined {
    checkName(machineId, 'machineId');
    const row = this.#s.machine.get({ id: machineId.toLowerCase() }) as Row | undefined;
    return row === undefined ? undefined : machineOf(row);
  }

  /**
   * Per group (all, or the one named): its policy, current release, machines per version and per
   * state, in progress, failures of the release, and a one-line summary (GroupStatus), at the
   * store's clock. FastPatchError('USAGE') for an unknown group.
   */
  status(group?: string): GroupStatus[] {
    const now = this.#now();
    return this.#read(() => {
      const policies = group === undefined ? this.groups() : [this.#existing(group)];
      return policies.map((p) => groupStatus(this.#s, p, now));
    });
  }

  /** The machine's latest events, newest first, at most `limit` (1..1000, default 50). */
  events(machineId: string, limit = 50): EventRow[] {
    checkName(machineId, 'machineId');
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS_LISTED) throw new RangeError(`limit must be a whole number from 1 to ${MAX_EVENTS_LISTED}`);
    return (this.#s.events.all({ id: machineId.toLowerCase(), limit }) as Row[]).map(eventOf);
  }
}
