import type { Method } from '../model/evaluation/index.js';
import type { TrainingSummary } from '../model/training.js';
import type { Db } from './database.js';

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

  constructor(private readonly db: Db) {
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
    this.selectLatest = db.prepare('SELECT summary FROM model_versions WHERE forecast = ? ORDER BY created_at DESC, id DESC LIMIT ?').pluck();
    this.selectOne = db.prepare('SELECT summary FROM model_versions WHERE version = ?').pluck();
    this.selectMetrics = db.prepare('SELECT * FROM model_metrics WHERE version = ? ORDER BY method');
  }

  /** Records a finished training (an aborted one produced no model version and is not recorded). */
  record(summary: TrainingSummary): void {
    if (summary.status === 'aborted') return;
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

  latest(forecast: string, limit = 1): TrainingSummary[] {
    return (this.selectLatest.all(forecast, limit) as string[]).map((text) => JSON.parse(text) as TrainingSummary);
  }

  get(version: string): TrainingSummary | null {
    const text = this.selectOne.get(version) as string | undefined;
    return text === undefined ? null : (JSON.parse(text) as TrainingSummary);
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
      byStep: JSON.parse(row.by_step as string),
      coverage: row.coverage === null ? null : JSON.parse(row.coverage as string),
    }));
  }
}

const finiteOrNull = (value: number | null | undefined) => (value === null || value === undefined || !Number.isFinite(value) ? null : value);
