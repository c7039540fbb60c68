import { ContractError } from '../contracts/contract.js';
import { parseTrainingRecord, trainingRecordOf, type TrainingRecord } from '../contracts/trainingRecord.js';
import type { Method } from '../model/evaluation/index.js';
import type { TrainingSummary } from '../model/training.js';
import type { Db } from './database.js';

// Every field a training reports has a place in the stored record: a field added to TrainingSummary without one
// fails to compile here, instead of being dropped on the way to disk.
type UnrecordedFields = Exclude<keyof TrainingSummary, keyof TrainingRecord>;
const everyFieldRecorded: [UnrecordedFields] extends [never] ? true : UnrecordedFields = true;
void everyFieldRecorded;

export interface ModelVersionRow {
  version: string;
  forecast: string;
  createdAt: number;
  backend: string;
  durationMs: number;
  samples: number;
  checkpoint: string | null;
  summary: TrainingSummary;
}

/** One method's scores on a version's held-out windows (the model, the champion it challenged, each baseline). */
export interface ModelMetricsRow {
  version: string;
  method: Method;
  windows: number;
  mae: number;
  rmse: number;
  mase: number | null;
  mseScaled: number | null;
  byStep: { mae: number[]; rmse: number[]; mase: number[] | null };
  /** Per interval level (the summary's evaluation.levels), the share of actuals inside. */
  coverage: number[] | null;
}

/**
 * The record of every finished training: what was trained on what (config hash, data range, scaler),
 * how it went (loss per epoch, duration, backend), how it scored next to the baselines on the same
 * held-out windows, and whether it was promoted. The full summary is kept as JSON; the columns and
 * model_metrics make the usual questions answerable in SQL.
 */
export class ModelVersionStore {
  private readonly insert;
  private readonly insertMetrics;
  private readonly selectLatest;
  private readonly selectOne;
  private readonly selectMetrics;
  /** Each stored record once validated (or refused: null), by version. */
  private readonly validated = new Map<string, TrainingRecord | null>();

  constructor(
    private readonly db: Db,
    /** Told about each stored record that does not validate (it is left out, never cast); the daemon logs it. */
    private readonly onRefused: (error: ContractError) => void = () => undefined,
  ) {
    this.insert = db.prepare(
      `INSERT INTO model_versions(forecast, version, created_at, backend, duration_ms, samples, checkpoint, summary,
                                  config_hash, data_from, data_to, promoted, served_by, decision)
       VALUES (@forecast, @version, @createdAt, @backend, @durationMs, @samples, @checkpoint, @summary,
               @configHash, @dataFrom, @dataTo, @promoted, @servedBy, @decision)
       ON CONFLICT(version) DO NOTHING`,
    );
    this.insertMetrics = db.prepare(
      `INSERT INTO model_metrics(version, method, windows, mae, rmse, mase, mse_scaled, by_step, coverage)
       VALUES (@version, @method, @windows, @mae, @rmse, @mase, @mseScaled, @byStep, @coverage)
       ON CONFLICT(version, method) DO NOTHING`,
    );
    this.selectLatest = db.prepare('SELECT version, summary FROM model_versions WHERE forecast = ? ORDER BY created_at DESC, id DESC LIMIT ?');
    this.selectOne = db.prepare('SELECT version, summary FROM model_versions WHERE version = ?');
    this.selectMetrics = db.prepare('SELECT * FROM model_metrics WHERE version = ? ORDER BY method');
  }

  /** Records a finished training (an aborted one produced no model version and is not recorded). */
  record(training: TrainingSummary): void {
    if (training.status === 'aborted') return;
    // Validated and completed at write time: a field that does not fit fails here, not at the next read.
    const summary = trainingRecordOf(training);
    this.db.transaction(() => {
      const inserted = this.insert.run({
        forecast: summary.forecast,
        version: summary.version,
        createdAt: summary.startedAt,
        backend: summary.backend,
        durationMs: Math.round(summary.durationMs),
        samples: summary.trainWindows * summary.epochsCompleted,
        checkpoint: summary.servingCheckpointId ?? summary.checkpointId,
        summary: JSON.stringify(summary),
        configHash: summary.configHash ?? null,
        dataFrom: summary.dataRange.fromMs,
        dataTo: summary.dataRange.toMs,
        promoted: summary.decision ? Number(summary.decision.promoted) : null,
        servedBy: summary.decision?.servedBy ?? null,
        decision: summary.decision?.reason ?? null,
      }).changes;
      if (inserted === 0) return;
      for (const [method, scores] of Object.entries(summary.evaluation?.methods ?? {})) {
        if (!scores) continue;
        this.insertMetrics.run({
          version: summary.version,
          method,
          windows: scores.windows,
          mae: scores.mae,
          rmse: scores.rmse,
          mase: finiteOrNull(scores.mase),
          mseScaled: finiteOrNull(scores.mseScaled),
          byStep: JSON.stringify({ mae: scores.maeByStep, rmse: scores.rmseByStep, mase: scores.maseByStep }),
          coverage: JSON.stringify(scores.coverage),
        });
      }
    })();
  }

  /** The newest valid records of a forecast, newest first (a record that does not validate is left out and reported). */
  latest(forecast: string, limit = 1): TrainingRecord[] {
    return (this.selectLatest.all(forecast, limit) as StoredRow[]).flatMap((row) => this.parsed(row) ?? []);
  }

  get(version: string): TrainingRecord | null {
    const row = this.selectOne.get(version) as StoredRow | undefined;
    return row === undefined ? null : this.parsed(row);
  }

  /**
   * A stored record, validated once: rows are never changed after they are written, and the status document reads the
   * newest record of every forecast every second. A refused record is reported once, not at every read.
   */
  private parsed(row: StoredRow): TrainingRecord | null {
    const cached = this.validated.get(row.version);
    if (cached !== undefined) return cached;
    let record: TrainingRecord | null;
    try {
      record = parseTrainingRecord(JSON.parse(row.summary), row.version);
    } catch (error) {
      this.onRefused(
        error instanceof ContractError ? error : new ContractError(`training record ${row.version}`, `not JSON (${(error as Error).message})`),
      );
      record = null;
    }
    if (this.validated.size >= VALIDATED_KEPT) this.validated.clear();
    this.validated.set(row.version, record);
    return record;
  }

  metrics(version: string): ModelMetricsRow[] {
    return (this.selectMetrics.all(version) as Array<Record<string, unknown>>).map((row) => ({
      version: row.version as string,
      method: row.method as Method,
      windows: row.windows as number,
      mae: row.mae as number,
      rmse: row.rmse as number,
      mase: row.mase as number | null,
      mseScaled: row.mse_scaled as number | null,
      byStep: JSON.parse(row.by_step as string) as ModelMetricsRow['byStep'],
      coverage: row.coverage === null ? null : (JSON.parse(row.coverage as string) as number[]),
    }));
  }
}

interface StoredRow {
  version: string;
  summary: string;
}

/** Records kept validated; more are validated again when asked for (a bound, not a budget: a forecast keeps a few). */
const VALIDATED_KEPT = 1000;

const finiteOrNull = (value: number | null | undefined) => (value === null || value === undefined || !Number.isFinite(value) ? null : value);
