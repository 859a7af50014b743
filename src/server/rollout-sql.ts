/**
 * Every statement the rollout store runs, prepared once per connection, and the mapping of rows
 * to the store's types. The hot path (check-in, grant) uses only indexed lookups and counts
 * bounded by the cap they compare against (docs/ROLLOUT.md, "SQLite schema").
 */
import type { DatabaseSync, SQLOutputValue, StatementSync } from 'node:sqlite';
import { IN_PROGRESS_SQL, OUTCOME_SQL } from './rollout-db.js';
import type { GroupPolicy, MachineState } from './rollout-policy.js';

/** A row as node:sqlite returns it. */
export type Row = Record<string, SQLOutputValue>;

const SQL = {
  begin: 'BEGIN IMMEDIATE',
  beginRead: 'BEGIN',
  commit: 'COMMIT',
  rollback: 'ROLLBACK',
  // A machine that checks in running the version it was granted has finished, 3/2 or not
  // (Nebraska marks it Complete the same way). SET expressions read the row as it was.
  upsertMachine: `INSERT INTO machines (id, grp, channel, version, boot_id, oem, first_seen, last_seen, state, state_at, target, granted_at, error_code, failed_version)
    VALUES (:id, :grp, :channel, :version, :bootId, :oem, :at, :at, 'idle', :at, '', 0, NULL, '')
    ON CONFLICT (id) DO UPDATE SET grp = excluded.grp, channel = excluded.channel, version = excluded.version,
      boot_id = excluded.boot_id, oem = excluded.oem, last_seen = excluded.last_seen,
      state = CASE WHEN machines.${IN_PROGRESS_SQL} AND machines.target = excluded.version THEN 'complete' ELSE machines.state END,
      state_at = CASE WHEN machines.${IN_PROGRESS_SQL} AND machines.target = excluded.version THEN excluded.last_seen ELSE machines.state_at END`,
  machine: 'SELECT * FROM machines WHERE id = :id',
  machineCount: 'SELECT COUNT(*) AS n FROM machines',
  insertGroup: `INSERT INTO rollout_groups (name, channel, paused, pause_reason, open_percent, max_per_period, period_seconds, max_in_progress, update_timeout_seconds, failure_threshold)
    VALUES (:name, :channel, :paused, :pauseReason, :openPercent, :maxPerPeriod, :periodSeconds, :maxInProgress, :updateTimeoutSeconds, :failureThreshold)
    ON CONFLICT (name) DO NOTHING`,
  updateGroup: `UPDATE rollout_groups SET channel = :channel, paused = :paused, pause_reason = :pauseReason, open_percent = :openPercent,
    max_per_period = :maxPerPeriod, period_seconds = :periodSeconds, max_in_progress = :maxInProgress,
    update_timeout_seconds = :updateTimeoutSeconds, failure_threshold = :failureThreshold WHERE name = :name`,
  group: 'SELECT * FROM rollout_groups WHERE name = :name',
  groups: 'SELECT * FROM rollout_groups ORDER BY name',
  currentRollout: 'SELECT * FROM rollouts WHERE grp = :grp ORDER BY id DESC LIMIT 1',
  insertRollout: `INSERT INTO rollouts (grp, version, started_at, baseline)
    VALUES (:grp, :version, :at, (SELECT coalesce(max(id), 0) FROM events))`,
  rebaseRollout: 'UPDATE rollouts SET baseline = (SELECT coalesce(max(id), 0) FROM events) WHERE id = :id',
  insertEvent: `INSERT INTO events (machine_id, at, grp, version, target, type, result, error_code, previous_version)
    VALUES (:id, :at, :grp, :version, :target, :type, :result, :errorCode, :previousVersion)`,
  setState: 'UPDATE machines SET state = :state, state_at = :at WHERE id = :id',
  setFailed: 'UPDATE machines SET state = :state, state_at = :at, error_code = :errorCode, failed_version = target WHERE id = :id',
  setFailedRetry: 'UPDATE machines SET state = :state, state_at = :at, error_code = :errorCode WHERE id = :id',
  clearFailure: "UPDATE machines SET failed_version = '' WHERE id = :id",
  // Keeps a machine's newest :keep events: a device cannot grow the file without bound.
  pruneEvents: `DELETE FROM events WHERE machine_id = :id
    AND id <= (SELECT id FROM events WHERE machine_id = :id ORDER BY id DESC LIMIT 1 OFFSET :keep)`,
  events: 'SELECT * FROM events WHERE machine_id = :id ORDER BY id DESC LIMIT :limit',
  // Per machine its latest outcome (failed, rolled back, complete) for the release since the
  // baseline; those that failed or rolled back, oldest first.
  failures: `SELECT machine_id, error_code, at FROM (
      SELECT id, machine_id, result, error_code, at, row_number() OVER (PARTITION BY machine_id ORDER BY id DESC) AS latest
      FROM events WHERE grp = :grp AND target = :target AND id > :baseline AND ${OUTCOME_SQL})
    WHERE latest = 1 AND result = 0 ORDER BY id LIMIT :limit`,
  // Counted up to :limit only: a cap of N needs to know "N or more", not the exact number.
  grantsInPeriod: 'SELECT count(*) AS n FROM (SELECT 1 FROM grants WHERE grp = :grp AND at > :since LIMIT :limit)',
  inProgress: `SELECT count(*) AS n FROM (SELECT 1 FROM machines WHERE grp = :grp AND ${IN_PROGRESS_SQL}
    AND granted_at > :since LIMIT :limit)`,
  // One row per machine and release: a machine granted it again (after a timeout or a failure
  // that allows a retry) moves its row to the new time, so the table is bounded by the fleet.
  insertGrant: 'INSERT INTO grants (grp, machine_id, version, at) VALUES (:grp, :id, :version, :at) ON CONFLICT (grp, machine_id, version) DO UPDATE SET at = excluded.at',
  setGranted: "UPDATE machines SET state = 'granted', state_at = :at, target = :version, granted_at = :at WHERE id = :id",
  pruneGrants: 'DELETE FROM grants WHERE grp = :grp AND at <= :before',
  oldestGrantInPeriod: 'SELECT min(at) AS at FROM grants WHERE grp = :grp AND at > :since',
  statesOfGroup: 'SELECT state, count(*) AS n FROM machines WHERE grp = :grp GROUP BY state',
  versionsOfGroup: 'SELECT version, count(*) AS n FROM machines WHERE grp = :grp GROUP BY version ORDER BY n DESC, version LIMIT :limit',
  machinesOfGroup: 'SELECT id FROM machines WHERE grp = :grp',
  machinesOnVersion: 'SELECT count(*) AS n FROM machines WHERE grp = :grp AND version = :version',
} as const;

/** The store's statements by name, each prepared once. */
export type Statements = { [K in keyof typeof SQL]: StatementSync };

/** Prepares every statement of the store on `db` (once, at open). */
export function prepareStatements(db: DatabaseSync): Statements {
  return Object.fromEntries(Object.entries(SQL).map(([name, text]) => [name, db.prepare(text)])) as Statements;
}

/** Column `key` of `row` as text (throws on a type the schema cannot hold: a bug). */
export function text(row: Row, key: string): string {
  const v = row[key];
  if (typeof v !== 'string') throw new TypeError(`column ${key} is not text`);
  return v;
}

/** Column `key` of `row` as a number; null becomes undefined. */
export function numberOf(row: Row, key: string): number | undefined {
  const v = row[key];
  if (v === null || v === undefined) return undefined;
  if (typeof v !== 'number') throw new TypeError(`column ${key} is not a number`);
  return v;
}

/** Column `key` of `row` as a number that must be there. */
export function num(row: Row, key: string): number {
  const v = numberOf(row, key);
  if (v === undefined) throw new TypeError(`column ${key} is null`);
  return v;
}

/** A rollout_groups row as a GroupPolicy. */
export function policyOf(row: Row): GroupPolicy {
  return {
    name: text(row, 'name'), channel: text(row, 'channel'), paused: num(row, 'paused') !== 0, pauseReason: text(row, 'pause_reason'),
    openPercent: num(row, 'open_percent'), maxPerPeriod: num(row, 'max_per_period'), periodSeconds: num(row, 'period_seconds'),
    maxInProgress: num(row, 'max_in_progress'), updateTimeoutSeconds: num(row, 'update_timeout_seconds'), failureThreshold: num(row, 'failure_threshold'),
  };
}

/** A GroupPolicy as the named parameters of insertGroup and updateGroup. */
export function policyParams(p: GroupPolicy): Record<string, string | number> {
  return { ...p, paused: p.paused ? 1 : 0 };
}

/** One machine as the store knows it. */
export interface MachineRow {
  machineId: string;
  group: string;
  channel: string;
  /** The version it last said it runs. */
  version: string;
  bootId: string;
  oem: string;
  firstSeen: number;
  lastSeen: number;
  state: MachineState;
  /** When the state last changed, ms. */
  stateAt: number;
  /** The version last granted; '' before any grant. */
  target: string;
  /** When that grant was made, ms; 0 before any. */
  grantedAt: number;
  /** The code of its last failure or rollback. */
  errorCode?: number;
  /** The release it failed or rolled back and is not granted again (until clearFailure); '' when none. */
  failedVersion: string;
}

/** A machines row as a MachineRow. */
export function machineOf(row: Row): MachineRow {
  const errorCode = numberOf(row, 'error_code');
  return {
    machineId: text(row, 'id'), group: text(row, 'grp'), channel: text(row, 'channel'), version: text(row, 'version'),
    bootId: text(row, 'boot_id'), oem: text(row, 'oem'), firstSeen: num(row, 'first_seen'), lastSeen: num(row, 'last_seen'),
    state: text(row, 'state') as MachineState, stateAt: num(row, 'state_at'), target: text(row, 'target'), grantedAt: num(row, 'granted_at'),
    ...(errorCode !== undefined ? { errorCode } : {}), failedVersion: text(row, 'failed_version'),
  };
}

/** One recorded event. */
export interface EventRow {
  /** When it was reported, ms. */
  at: number;
  /** The machine's group and running version when it reported it. */
  group: string;
  version: string;
  /** The version the machine had been granted then ('' when none). */
  target: string;
  type: number;
  result: number;
  errorCode?: number;
  previousVersion?: string;
}

/** An events row as an EventRow. */
export function eventOf(row: Row): EventRow {
  const errorCode = numberOf(row, 'error_code');
  const previous = row['previous_version'];
  return {
    at: num(row, 'at'), group: text(row, 'grp'), version: text(row, 'version'), target: text(row, 'target'),
    type: num(row, 'type'), result: num(row, 'result'),
    ...(errorCode !== undefined ? { errorCode } : {}), ...(typeof previous === 'string' ? { previousVersion: previous } : {}),
  };
}
