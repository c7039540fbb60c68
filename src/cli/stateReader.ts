/**
 * Reads a forecastd state directory (database and checkpoints) without the daemon, for `forecastd status`,
 * `forecastd forecast` and `forecastd models`. The database is opened read-only unless a command must write
 * (a model pin): a running daemon keeps working meanwhile (SQLite WAL lets readers and one writer share it).
 */
import { statSync } from 'node:fs';
import type { Config, ForecastConfig } from '../config/schema.js';
import { statePaths } from '../daemon/paths.js';
import { forecastCheckpoints } from '../model/stores.js';
import type { ForecastMessage } from '../publish/forecastMessage.js';
import type { Db } from '../store/database.js';
import { openSqliteStore, type SqliteStore } from '../store/sqliteStore.js';
import type { ModelPins, ModelVersions, PublishedForecasts, Readings, SeriesCatalogView } from '../store/store.js';
import { UsageError } from './usage.js';

/** A problem with the state on disk (no database yet): exit code 1 with a message that says what to do. */
export class StateError extends Error {}

export interface StateReader {
  readonly db: Db;
  readonly databasePath: string;
  readonly checkpointRoot: string;
  readonly readings: Readings;
  readonly versions: ModelVersions;
  readonly catalog: SeriesCatalogView;
  /** Null when the database predates the table (the daemon of this version has not run on it yet). */
  readonly published: PublishedForecasts | null;
  readonly pins: ModelPins | null;
  fileSizes(): { db: number; wal: number };
  /** The version the serving checkpoint store holds now (what the daemon loads), verified; null without one. */
  servingCheckpointVersion(forecast: ForecastConfig): Promise<string | null>;
  /** Versions whose weights the serving store still keeps, newest first. */
  keptVersions(forecast: ForecastConfig): Promise<string[]>;
  close(): void;
}

export function findForecast(config: Config, name: string | undefined, configPath: string, usage: string): ForecastConfig {
  if (!name) throw new UsageError(usage);
  const forecast = config.forecasts.find((candidate) => candidate.name === name);
  if (!forecast) throw new UsageError(`no forecast "${name}" in ${configPath} (it has: ${config.forecasts.map((f) => f.name).join(', ') || 'none'})`);
  return forecast;
}

const hasTable = (db: Db, table: string) =>
  db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(table) !== undefined;

export function openState(config: Config, options: { write?: boolean } = {}): StateReader {
  const { databasePath, checkpointRoot } = statePaths(config);
  let store: SqliteStore;
  try {
    // A CLI reader says so on stderr, so that a refused record is not silently missing from its output.
    store = openSqliteStore({
      path: databasePath,
      synchronous: config.storage.synchronous,
      readonly: !options.write,
      onRefused: (refusal) => process.stderr.write(`forecastd: ${refusal.message} (left out)\n`),
    });
  } catch (error) {
    throw new StateError(
      `cannot open the database ${databasePath}: ${(error as Error).message}\n` +
        `  (storage.stateDir is ${config.storage.stateDir}: has the daemon run with this config? \`forecastd run --config <file>\` creates it)`,
    );
  }
  const { db } = store;
  const published = hasTable(db, 'published_forecasts') ? store.published : null;
  const pins = hasTable(db, 'model_pins') ? store.pins : null;
  const size = (path: string) => {
    try {
      return statSync(path).size;
    } catch {
      return 0;
    }
  };
  return {
    db,
    databasePath,
    checkpointRoot,
    readings: store.readings,
    versions: store.versions,
    catalog: store.catalog,
    published,
    pins,
    fileSizes: () => ({ db: size(databasePath), wal: size(`${databasePath}-wal`) }),
    async servingCheckpointVersion(forecast) {
      const loaded = await forecastCheckpoints(checkpointRoot, forecast).serving.loadLatest();
      const version = loaded?.content.meta.version;
      return typeof version === 'string' ? version : null;
    },
    async keptVersions(forecast) {
      const infos = await forecastCheckpoints(checkpointRoot, forecast).serving.list();
      return [...new Set(infos.map((info) => info.meta.version).filter((version): version is string => typeof version === 'string'))];
    },
    close: () => store.close(),
  };
}

/** The last published forecast of a forecast, or null. */
export function lastPublished(state: StateReader, forecast: string): ForecastMessage | null {
  return state.published?.latest(forecast) ?? null;
}

/** "2026-11-28 12:00" in local time. */
export function localTime(ms: number | string | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return '–';
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function ago(ms: number, now = Date.now()): string {
  const seconds = Math.round((now - ms) / 1000);
  const abs = Math.abs(seconds);
  const text =
    abs < 90
      ? `${abs} s`
      : abs < 5400
        ? `${Math.round(abs / 60)} min`
        : abs < 172_800
          ? `${Math.round(abs / 3600)} h`
          : `${Math.round(abs / 86_400)} d`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

export function bytes(count: number): string {
  if (count < 1024) return `${count} B`;
  if (count < 1024 ** 2) return `${(count / 1024).toFixed(1)} KB`;
  if (count < 1024 ** 3) return `${(count / 1024 ** 2).toFixed(1)} MB`;
  return `${(count / 1024 ** 3).toFixed(2)} GB`;
}

export const fmt = (value: number | null | undefined, digits = 3) =>
  value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
