/**
 * `/readyz`: can this forecastd do its job right now? Three checks, each with the reason when it fails:
 *   - broker:    connected to the MQTT broker (readings arrive, forecasts leave);
 *   - database:  the SQLite database takes a write lock (not read-only, not locked by another process), and readings
 *                are being stored (a full disk lets the lock be taken but fails every commit);
 *   - scheduler: every forecast's tick fired within two intervals (the clockwork is alive).
 * A forecast that is still warming up does not make the daemon unready: that is reported per forecast.
 */
import type { ForecastConfig } from '../config/schema.js';
import type { IngestHealth } from '../ingest/ingestRoute.js';
import type { Db } from '../store/database.js';

export interface Check {
  ok: boolean;
  detail: string;
}

export interface Readiness {
  ready: boolean;
  checks: Record<'broker' | 'database' | 'scheduler', Check>;
}

export interface ReadinessSources {
  brokerConnected: () => boolean;
  brokerUrl: string;
  db: Db;
  /** Whether ingest stores readings; absent where nothing ingests. */
  ingest?: () => IngestHealth;
  forecasts: ReadonlyArray<ForecastConfig>;
  /** When the scheduler last fired each forecast's tick (epoch ms). */
  lastTick: (forecast: string) => number | undefined;
  startedAt: number;
  clock: () => number;
}

/** A tick fires just after each boundary (plus a 2 s settle); a late one by more than this means trouble. */
const TICK_SLACK_MS = 30_000;

export function databaseWritable(db: Db): Check {
  if (!db.open) return { ok: false, detail: 'the database is closed' };
  if (db.readonly) return { ok: false, detail: 'the database is open read-only' };
  // Inside a transaction the lock is already ours (only this thread writes), so there is nothing to probe.
  if (db.inTransaction) return { ok: true, detail: 'writable (a transaction is running)' };
  try {
    db.exec('BEGIN IMMEDIATE');
    db.exec('ROLLBACK');
    return { ok: true, detail: 'writable' };
  } catch (error) {
    return { ok: false, detail: `cannot take the write lock: ${(error as Error).message}` };
  }
}

/** The lock check, then whether commits succeed: the one fact the lock cannot tell. */
export function databaseStoring(db: Db, ingest: IngestHealth | undefined, now: number): Check {
  const writable = databaseWritable(db);
  if (!writable.ok || !ingest || ingest.storing) return writable;
  const since = ingest.failingSince ?? now;
  return {
    ok: false,
    detail:
      `cannot store readings for ${Math.round((now - since) / 1000)} s (since ${new Date(since).toISOString()}): ${ingest.lastError ?? 'unknown error'}; ` +
      `${ingest.held} message(s) wait unacknowledged, kept by the broker, and are retried (is the disk full?)`,
  };
}

export function schedulerAlive(sources: Pick<ReadinessSources, 'forecasts' | 'lastTick' | 'startedAt' | 'clock'>): Check {
  if (sources.forecasts.length === 0) return { ok: true, detail: 'no forecasts configured' };
  const now = sources.clock();
  const late: string[] = [];
  for (const forecast of sources.forecasts) {
    const last = sources.lastTick(forecast.name) ?? sources.startedAt;
    const limitMs = 2 * forecast.interval * 1000 + TICK_SLACK_MS;
    if (now - last > limitMs)
      late.push(`${forecast.name} last ticked ${Math.round((now - last) / 1000)} s ago (every ${forecast.interval} s expected)`);
  }
  return late.length
    ? { ok: false, detail: `forecast ticks are late: ${late.join('; ')}` }
    : { ok: true, detail: `${sources.forecasts.length} forecast tick(s) on time` };
}

/** The broker URL without credentials (mqtt://user:password@host would otherwise end up in a response body). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}

export function readinessCheck(sources: ReadinessSources): Readiness {
  const connected = sources.brokerConnected();
  const brokerUrl = redactUrl(sources.brokerUrl);
  const checks = {
    broker: connected ? { ok: true, detail: `connected to ${brokerUrl}` } : { ok: false, detail: `not connected to ${brokerUrl}; reconnecting` },
    database: databaseStoring(sources.db, sources.ingest?.(), sources.clock()),
    scheduler: schedulerAlive(sources),
  };
  return { ready: Object.values(checks).every((check) => check.ok), checks };
}
