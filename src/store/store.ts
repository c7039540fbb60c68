/**
 * What forecastd keeps, as the daemon, the CLI and backtest see it: one interface per kind of record, gathered in a
 * Store. SQLite (./sqliteStore.ts) is its one implementation today; a second one (PostgreSQL, for a fleet) implements
 * these interfaces and the callers stay as they are.
 *
 * Everything here is synchronous, as better-sqlite3 is: ingest's group commit (beginGroup … commitGroup, then the
 * PUBACKs) relies on nothing else running in between.
 */
import type { ContractError } from '../contracts/contract.js';
import type { TrainingRecord } from '../contracts/trainingRecord.js';
import type { ForecastMessage } from '../contracts/forecastMessage.js';
import type { TrainingSummary } from '../model/training.js';
import type { DeadLetter, StoredDeadLetter } from './deadLetters.js';
import type { IssuedForecast } from '../model/evaluation/liveAccuracy.js';
import type { ModelPin } from './modelPins.js';
import type { ModelMetricsRow } from './modelVersions.js';
import type { EnqueueResult, NewOutboxMessage, OutboxRow, OutboxState } from './outbox.js';
import type { SeriesColumn, SeriesData } from './readings.js';
import type { SeriesInfo } from './seriesCatalog.js';

export interface Readings {
  /** The id of a series (created when `create`); undefined when it does not exist. */
  seriesId(name: string, create: boolean): number | undefined;
  /** Stores readings, skipping those already stored (key: series, ts); returns how many were new. */
  insertMany(readings: ReadonlyArray<{ series: string; ts: number; value: number }>): number;
  /** Column-wise bulk insert (CSV import); returns how many were new. */
  insertColumns(columns: readonly SeriesColumn[]): number;
  /** Ingest's group commit: readings stored between beginGroup and commitGroup commit together. */
  beginGroup(): void;
  readonly inGroup: boolean;
  commitGroup(): void;
  rollbackGroup(): void;
  /** A series' readings in [fromMs, toMs), sorted by time. */
  read(name: string, fromMs: number, toMs: number): SeriesData;
  latest(name: string): { ts: number; value: number } | null;
  count(): number;
  /**
   * The readings of several series in [fromMs, toMs), ordered by time and then by the series' position in `names`
   * (CSV export); series that do not exist yield nothing.
   */
  iterateRows(names: readonly string[], fromMs: number, toMs: number): IterableIterator<[ts: number, position: number, value: number]>;
}

export interface ModelVersions {
  record(training: TrainingSummary): void;
  latest(forecast: string, limit?: number): TrainingRecord[];
  get(version: string): TrainingRecord | null;
  metrics(version: string): ModelMetricsRow[];
}

export interface IssuedForecasts {
  record(message: ForecastMessage): void;
  since(forecast: string, fromMs: number): IssuedForecast[];
  prune(beforeMs: number): number;
}

export interface PublishedForecasts {
  record(message: ForecastMessage): void;
  latest(forecast: string): ForecastMessage | null;
  all(): ForecastMessage[];
}

export interface Outbox {
  readonly pending: number;
  enqueue(message: NewOutboxMessage, protect?: ReadonlySet<number>): EnqueueResult;
  pendingAfter(afterId: number, limit: number): OutboxRow[];
  recordAttempt(id: number): void;
  markPublished(id: number): boolean;
  markRefused(id: number, reasonCode: number): boolean;
  markExpired(id: number): boolean;
  newerPublished(topic: string, id: number): boolean;
  prune(beforeMs: number): number;
  countsByState(): Record<OutboxState, number>;
}

export interface ModelPins {
  pin(pin: ModelPin): void;
  get(forecast: string): ModelPin | null;
  clear(forecast: string): boolean;
}

export interface DeadLetters {
  record(letter: DeadLetter): void;
  prune(nowMs: number): number;
  count(): number;
  recent(limit: number): StoredDeadLetter[];
}

export interface SeriesCatalogView {
  list(): SeriesInfo[];
  get(name: string): SeriesInfo | null;
  readingCount(name: string): number;
  size(): { usedBytes: number; fileBytes: number };
}

export interface Store {
  readonly readings: Readings;
  readonly versions: ModelVersions;
  readonly issued: IssuedForecasts;
  readonly published: PublishedForecasts;
  readonly outbox: Outbox;
  readonly pins: ModelPins;
  /** Null unless `ingest.deadLetter.enabled`. */
  readonly deadLetters: DeadLetters | null;
  readonly catalog: SeriesCatalogView;
  /** Runs `work` in one transaction: all of its writes commit, or none. */
  transaction(work: () => void): void;
  close(): void;
}

/** How a store reports a stored record it refused (it is left out, never cast). */
export type RefusalReport = (error: ContractError) => void;
