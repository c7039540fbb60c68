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

/** The record of every training: what was trained on what, how long it took and how it scored. */
export class ModelVersionStore {
  private readonly insert;
  private readonly selectLatest;

  constructor(db: Db) {
    this.insert = db.prepare(
      `INSERT INTO model_versions(forecast, version, created_at, backend, duration_ms, samples, checkpoint, summary)
       VALUES (@forecast, @version, @createdAt, @backend, @durationMs, @samples, @checkpoint, @summary)
       ON CONFLICT(version) DO NOTHING`,
    );
    this.selectLatest = db.prepare('SELECT summary FROM model_versions WHERE forecast = ? ORDER BY created_at DESC LIMIT ?').pluck();
  }

  record(summary: TrainingSummary): void {
    this.insert.run({
      forecast: summary.forecast,
      version: summary.version,
      createdAt: summary.startedAt,
      backend: summary.backend,
      durationMs: Math.round(summary.durationMs),
      samples: summary.trainWindows * summary.epochsCompleted,
      checkpoint: summary.checkpointId,
      summary: JSON.stringify(summary),
    });
  }

  latest(forecast: string, limit = 1): TrainingSummary[] {
    return (this.selectLatest.all(forecast, limit) as string[]).map((text) => JSON.parse(text) as TrainingSummary);
  }
}
