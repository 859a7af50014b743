/**
 * The rollout database's file, connection settings and schema (docs/ROLLOUT.md, "SQLite schema").
 *
 * The server runs as root and the file holds machine ids, so it is created exclusively with mode
 * 0600, and a symbolic link (or anything but a regular file) at its name, or at the names SQLite
 * gives its WAL and shared-memory files, is refused rather than followed.
 */
import { closeSync, constants, fchmodSync, lstatSync, openSync, type Stats } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { FastPatchError, ioError } from '../errors.js';

/** The schema this FastPatch writes, kept in `PRAGMA user_version`; a newer one is refused. */
export const SCHEMA_VERSION = 1;

/** How long a call waits for another process's write transaction (the operator CLI beside the server), in ms. */
export const BUSY_TIMEOUT_MS = 5000;

/**
 * The machine states that count as in progress (rollout-policy.ts IN_PROGRESS_STATES), as SQL:
 * one text for the partial index and the queries, since SQLite uses a partial index only for a
 * query whose WHERE repeats the index's own condition.
 */
export const IN_PROGRESS_SQL = "state IN ('granted', 'downloading', 'downloaded', 'installed')";

/** The event pairs that end an attempt (3/0 failed or rolled back, 3/2 complete), as SQL, for the same reason. */
export const OUTCOME_SQL = 'type = 3 AND result IN (0, 2)';

// Machine states are checked by the database too, so a bug cannot write one the code does not know.
// Event ids never go back (AUTOINCREMENT): a rollout's failure baseline is an event id.
const SCHEMA_V1 = `
CREATE TABLE rollout_groups (
  name TEXT PRIMARY KEY NOT NULL,
  channel TEXT NOT NULL,
  paused INTEGER NOT NULL,
  pause_reason TEXT NOT NULL,
  open_percent REAL NOT NULL,
  max_per_period INTEGER NOT NULL,
  period_seconds INTEGER NOT NULL,
  max_in_progress INTEGER NOT NULL,
  update_timeout_seconds INTEGER NOT NULL,
  failure_threshold INTEGER NOT NULL
) STRICT;
CREATE TABLE rollouts (
  id INTEGER PRIMARY KEY,
  grp TEXT NOT NULL,
  version TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  baseline INTEGER NOT NULL
) STRICT;
CREATE INDEX rollouts_by_group ON rollouts (grp, id);
CREATE TABLE machines (
  id TEXT PRIMARY KEY NOT NULL,
  grp TEXT NOT NULL,
  channel TEXT NOT NULL,
  version TEXT NOT NULL,
  boot_id TEXT NOT NULL,
  oem TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('idle', 'granted', 'downloading', 'downloaded', 'installed', 'complete', 'failed', 'rolled-back', 'held')),
  state_at INTEGER NOT NULL,
  target TEXT NOT NULL,
  granted_at INTEGER NOT NULL,
  error_code INTEGER,
  failed_version TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX machines_by_group ON machines (grp, state);
CREATE INDEX machines_in_progress ON machines (grp, granted_at, state) WHERE ${IN_PROGRESS_SQL};
CREATE TABLE grants (
  id INTEGER PRIMARY KEY,
  grp TEXT NOT NULL,
  machine_id TEXT NOT NULL,
  version TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX grants_by_group ON grants (grp, at);
CREATE UNIQUE INDEX grants_once ON grants (grp, machine_id, version);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  machine_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  grp TEXT NOT NULL,
  version TEXT NOT NULL,
  target TEXT NOT NULL,
  type INTEGER NOT NULL,
  result INTEGER NOT NULL,
  error_code INTEGER,
  previous_version TEXT
) STRICT;
CREATE INDEX events_by_machine ON events (machine_id, id);
CREATE INDEX events_outcomes ON events (grp, target, id) WHERE ${OUTCOME_SQL};
`;

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`check ${path}`, err);
  }
}

/**
 * Refuses a symlink or non-file at `path`; a database file another user owns or may write is
 * refused too (they could pause groups, or grant their machines anything).
 */
function checkExisting(path: string, st: Stats, main: boolean): void {
  if (st.isSymbolicLink()) throw new FastPatchError('USAGE', `${path} is a symbolic link: give the rollout database's real path (it is never followed)`);
  if (!st.isFile()) throw new FastPatchError('USAGE', `${path} is not a regular file: give the path of a rollout database`);
  if (!main) return;
  const me = process.getuid?.() ?? 0;
  if (st.uid !== me && st.uid !== 0) throw new FastPatchError('USAGE', `${path} belongs to uid ${st.uid}, not to this user or root: chown it first`);
  if ((st.mode & 0o022) !== 0) throw new FastPatchError('USAGE', `${path} may be written by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it first`);
}

/**
 * Makes sure `path` names a regular file that is not a symlink, creating it empty with mode 0600
 * (exclusively, never following a link) when missing. Throws FastPatchError('USAGE') for a
 * symlink or non-file, FastPatchError('IO') when it cannot be created. node:sqlite then opens the
 * name again (it cannot open without following links): between the two, only someone who may
 * write the folder could swap the file, so the folder should be root's alone (docs/ROLLOUT.md).
 */
function prepareFile(path: string, attempts = 2): void {
  for (const side of ['-wal', '-shm', '-journal']) {
    const st = lstatOrUndefined(path + side);
    if (st) checkExisting(path + side, st, false);
  }
  const st = lstatOrUndefined(path);
  if (st) return checkExisting(path, st, true);
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    // Another process (the CLI, a second server) created it first: check what is there now.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempts > 1) return prepareFile(path, attempts - 1);
    throw ioError(`create the rollout database ${path}`, err);
  }
  try {
    fchmodSync(fd, 0o600); // exactly 0600, whatever the umask
  } finally {
    closeSync(fd);
  }
}

function single(db: DatabaseSync, sql: string): unknown {
  const row = db.prepare(sql).get();
  return row === undefined ? undefined : Object.values(row)[0];
}

/** Creates the schema in an empty file, or checks the version of an existing one. */
function migrate(db: DatabaseSync, path: string): void {
  const newer = (v: number) => new FastPatchError('USAGE', `${path} has rollout schema version ${v}, newer than the ${SCHEMA_VERSION} this FastPatch knows: run a newer FastPatch`);
  const seen = Number(single(db, 'PRAGMA user_version'));
  if (seen > SCHEMA_VERSION) throw newer(seen);
  if (seen === SCHEMA_VERSION) return;
  // IMMEDIATE: two processes opening a new file at once must not both create the schema.
  db.exec('BEGIN IMMEDIATE');
  try {
    const version = Number(single(db, 'PRAGMA user_version'));
    if (version > SCHEMA_VERSION) throw newer(version);
    if (version === 0) {
      if (Number(single(db, 'SELECT count(*) FROM sqlite_schema')) > 0) throw new FastPatchError('USAGE', `${path} is an SQLite database, but not a FastPatch rollout database`);
      db.exec(SCHEMA_V1);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/**
 * Opens (creating when missing) the rollout database at `path`, in WAL mode with
 * synchronous=NORMAL and a busy timeout, at the current schema version. Throws
 * FastPatchError('USAGE') for a symlink, a file others may write, another database or a newer
 * schema, FastPatchError('IO') when the file cannot be created or read.
 */
export function openDatabase(path: string): DatabaseSync {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) throw new RangeError('the rollout database path must be a non-empty string');
  prepareFile(path);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw ioError(`open the rollout database ${path}`, err);
  }
  try {
    // WAL: readers (status, the operator CLI) never block the server's writes, and a commit is
    // one append to the -wal file. synchronous=NORMAL: that append is written (write(2)) before
    // COMMIT returns but fsynced only at checkpoints, so every committed change survives the
    // process dying (kill -9, a crash): the OS holds the bytes. Only a power cut or kernel crash
    // can lose the last commits, and then the database rolls back whole, never corrupt.
    const mode = single(db, 'PRAGMA journal_mode = WAL');
    if (mode !== 'wal') throw new FastPatchError('IO', `${path}: SQLite refused WAL mode (journal mode is ${String(mode)})`);
    db.exec('PRAGMA synchronous = NORMAL');
    migrate(db, path);
    return db;
  } catch (err) {
    db.close();
    if (err instanceof FastPatchError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    if (/not a database|malformed/.test(message)) throw new FastPatchError('USAGE', `${path} is not a rollout database (${message})`, { cause: err });
    throw ioError(`open the rollout database ${path}`, err);
  }
}
