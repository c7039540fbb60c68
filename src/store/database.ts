import Database from 'better-sqlite3';
import { existsSync, mkdirSync, renameSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';

export type Db = Database.Database;

/**
 * Schema migrations, applied in order; PRAGMA user_version records how many ran.
 * Readings are keyed by (series_id, ts) so that an MQTT redelivery is a no-op (at-least-once + idempotent = effectively once).
 * The CHECK keeps ±Infinity out; NaN binds as NULL and fails NOT NULL.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE series (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL UNIQUE
   ) STRICT;
   CREATE TABLE readings (
     series_id INTEGER NOT NULL REFERENCES series(id),
     ts INTEGER NOT NULL,
     v REAL NOT NULL CHECK (v BETWEEN -1e15 AND 1e15),
     PRIMARY KEY (series_id, ts)
   ) STRICT, WITHOUT ROWID;
   CREATE TABLE model_versions (
     id INTEGER PRIMARY KEY,
     forecast TEXT NOT NULL,
     version TEXT NOT NULL UNIQUE,
     created_at INTEGER NOT NULL,
     backend TEXT NOT NULL,
     duration_ms INTEGER NOT NULL,
     samples INTEGER NOT NULL,
     checkpoint TEXT,
     summary TEXT NOT NULL
   ) STRICT;
   CREATE INDEX model_versions_forecast ON model_versions(forecast, created_at);`,
  // Rejected MQTT messages, kept (when ingest.deadLetter.enabled) for diagnosis; owned by store/deadLetters.ts.
  `CREATE TABLE dead_letters (
     id INTEGER PRIMARY KEY,
     received_at INTEGER NOT NULL,
     topic TEXT NOT NULL,
     reason TEXT NOT NULL,
     payload BLOB NOT NULL,
     payload_bytes INTEGER NOT NULL,
     sha256 TEXT NOT NULL
   ) STRICT;
   CREATE INDEX dead_letters_received_at ON dead_letters(received_at);`,
  // The last forecast published per forecast (store/publishedForecasts.ts), so the CLI, the API and the dashboard
  // have one after a restart; and a model version pinned by hand (store/modelPins.ts, `forecastd models --promote`).
  `CREATE TABLE published_forecasts (
     forecast TEXT PRIMARY KEY,
     issued_at INTEGER NOT NULL,
     message TEXT NOT NULL
   ) STRICT;
   CREATE TABLE model_pins (
     forecast TEXT PRIMARY KEY,
     version TEXT NOT NULL,
     pinned_at INTEGER NOT NULL,
     reason TEXT NOT NULL
   ) STRICT;`,
  // What each training was and how it scored next to the baselines on the same held-out windows, queryable
  // without parsing the summary JSON (store/modelVersions.ts). One model_metrics row per method and version.
  `ALTER TABLE model_versions ADD COLUMN config_hash TEXT;
   ALTER TABLE model_versions ADD COLUMN data_from INTEGER;
   ALTER TABLE model_versions ADD COLUMN data_to INTEGER;
   ALTER TABLE model_versions ADD COLUMN promoted INTEGER;
   ALTER TABLE model_versions ADD COLUMN served_by TEXT;
   ALTER TABLE model_versions ADD COLUMN decision TEXT;
   CREATE TABLE model_metrics (
     version TEXT NOT NULL,
     method TEXT NOT NULL,
     windows INTEGER NOT NULL,
     mae REAL NOT NULL,
     rmse REAL NOT NULL,
     mase REAL,
     mse_scaled REAL,
     by_step TEXT NOT NULL,
     coverage TEXT,
     PRIMARY KEY (version, method)
   ) STRICT, WITHOUT ROWID;`,
  // Every issued forecast's points for a few days (store/issuedForecasts.ts), scored against what happened by the
  // live accuracy job (scheduler/accuracyJob.ts); published_forecasts keeps only the latest one per forecast.
  `CREATE TABLE issued_forecasts (
     forecast TEXT NOT NULL,
     issued_at INTEGER NOT NULL,
     origin INTEGER NOT NULL,
     points TEXT NOT NULL,
     PRIMARY KEY (forecast, issued_at)
   ) STRICT, WITHOUT ROWID;
   CREATE INDEX issued_forecasts_issued_at ON issued_forecasts(issued_at);`,
  // The forecast outbox (store/outbox.ts): a forecast stays pending here until the broker's PUBACK, across
  // disconnects and restarts. AUTOINCREMENT: ids never come back after pruning, so they order the rows for good.
  `CREATE TABLE outbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     topic TEXT NOT NULL,
     payload TEXT NOT NULL,
     retain INTEGER NOT NULL CHECK (retain IN (0, 1)),
     created_at INTEGER NOT NULL,
     expires_at INTEGER,
     state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'published', 'refused', 'expired', 'dropped')),
     attempts INTEGER NOT NULL DEFAULT 0,
     last_attempt_at INTEGER,
     published_at INTEGER,
     settled_at INTEGER,
     reason_code INTEGER
   ) STRICT;
   CREATE INDEX outbox_pending ON outbox(id) WHERE state = 'pending';
   CREATE INDEX outbox_topic ON outbox(topic, id);
   CREATE INDEX outbox_settled ON outbox(settled_at) WHERE state <> 'pending';`,
];

export interface OpenOptions {
  path: string;
  synchronous: 'NORMAL' | 'FULL';
  readonly?: boolean;
  log?: Logger;
}

function applyPragmas(db: Db, synchronous: 'NORMAL' | 'FULL', readonly: boolean): void {
  // A short busy timeout: better-sqlite3 busy-waits on the event loop, which would freeze MQTT keepalives.
  db.pragma('busy_timeout = 250');
  if (readonly) return;
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('journal_size_limit = 67108864');
  db.pragma('foreign_keys = ON');
}

function migrate(db: Db): void {
  const applied = db.pragma('user_version', { simple: true }) as number;
  for (let index = applied; index < MIGRATIONS.length; index++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[index]);
      db.pragma(`user_version = ${index + 1}`);
    })();
  }
}

/**
 * Result codes that mean the file itself is damaged. Anything else the check may throw is the disk's or the system's
 * trouble, not the file's: on a full disk SQLite cannot size its -shm file and quick_check fails with
 * SQLITE_IOERR_SHMSIZE, and quarantining would throw a healthy history away for it (docs/reliability.md, F5).
 */
const CORRUPTION_CODE = /^SQLITE_(CORRUPT|NOTADB)/;

/** better-sqlite3 opens a corrupt file without complaint; the damage shows on the first query. */
function isHealthy(db: Db): string | null {
  try {
    const rows = db.pragma('quick_check') as Array<{ quick_check: string }>;
    const verdict = rows.map((row) => row.quick_check).join('; ');
    return verdict === 'ok' ? null : verdict;
  } catch (error) {
    if (!CORRUPTION_CODE.test((error as { code?: unknown }).code as string)) throw error;
    return (error as Error).message;
  }
}

/** The database could not be opened or prepared for a reason outside the file: disk full, I/O error, permissions. */
export class DatabaseUnavailableError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** Free bytes for an unprivileged writer on the file system holding `dir`, or null when it cannot tell. */
function freeBytes(dir: string): number | null {
  try {
    const stats = statfsSync(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return null;
  }
}

/** Below this much free space, a failure to open is put down to a full disk in the message. */
const NEARLY_FULL_BYTES = 1024 * 1024;

/**
 * Says what went wrong and what happens next. forecastd exits (code 1) rather than waiting in-process: systemd's
 * Restart=on-failure starts it again every RestartSec, each attempt is one log line, and READY=1 is never sent for
 * a daemon that cannot store anything.
 */
function unavailable(path: string, error: unknown): DatabaseUnavailableError {
  const raw = (error as { code?: unknown }).code;
  const code = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : 'unknown';
  const free = path === ':memory:' ? null : freeBytes(dirname(path));
  const diskFull = code === 'SQLITE_FULL' || code === 'ENOSPC' || (free !== null && free < NEARLY_FULL_BYTES);
  const cause = diskFull
    ? `the disk is full (${free === null ? 'free space unknown' : `${Math.floor(free / 1024)} KiB free`} in ${dirname(path)}): free some space there`
    : /^SQLITE_(BUSY|LOCKED)/.test(code)
      ? 'another process holds it (a second forecastd?)'
      : 'check the permissions of storage.stateDir and the disk holding it';
  return new DatabaseUnavailableError(
    `cannot open the database ${path}: ${(error as Error).message} (${code}); ${cause}. The database file was left as it is; forecastd exits and starts normally once this is fixed (systemd restarts it)`,
    code,
    { cause: error },
  );
}

/** Renames the database and its -wal/-shm together, so that a fresh start never mixes files of two databases. */
export function quarantineDatabase(path: string, now = Date.now()): string {
  const suffix = `.corrupt-${now}`;
  for (const extension of ['', '-wal', '-shm']) {
    if (existsSync(path + extension)) renameSync(path + extension, path + suffix + extension);
  }
  return path + suffix;
}

/**
 * Opens (creating if needed) the forecastd database, checks it and migrates it.
 * A corrupt file is quarantined and replaced by an empty database; the caller learns so through `quarantined`.
 */
export function openDatabase(options: OpenOptions): { db: Db; quarantined: string | null } {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  if (options.readonly) {
    const db = new Database(options.path, { readonly: true, fileMustExist: true });
    applyPragmas(db, options.synchronous, true);
    return { db, quarantined: null };
  }
  let db: Db | null = null;
  try {
    db = new Database(options.path);
    let quarantined: string | null = null;
    const problem = isHealthy(db);
    if (problem) {
      db.close();
      quarantined = quarantineDatabase(options.path);
      options.log?.error({ path: options.path, quarantinedAs: quarantined, problem }, 'database is corrupt: moved aside, starting with an empty one');
      db = new Database(options.path);
    }
    applyPragmas(db, options.synchronous, false);
    migrate(db);
    return { db, quarantined };
  } catch (error) {
    if (db?.open) db.close();
    if (typeof (error as { code?: unknown }).code !== 'string') throw error;
    const failure = unavailable(options.path, error);
    options.log?.error({ path: options.path, code: failure.code, err: (error as Error).message }, failure.message);
    throw failure;
  }
}
