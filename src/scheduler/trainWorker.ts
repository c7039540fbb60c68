/**
 * The body of a training task, run by Piscina in a worker thread: the main thread never trains.
 * It opens its own read-only database connection (connections cannot cross threads) and reports
 * epoch progress through the MessagePort it was given.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ForecastConfig } from '../config/schema.js';
import { initBackend, type BackendPreference } from '../model/backend.js';
import { CheckpointStore } from '../model/checkpoint.js';
import { trainForecastModel, type TrainingSummary } from '../model/training.js';
import { openDatabase } from '../store/database.js';
import { ReadingStore } from '../store/readings.js';

export interface TrainTask {
  forecast: ForecastConfig;
  databasePath: string;
  checkpointRoot: string;
  backend: BackendPreference;
  allowNative: boolean;
  nowMs: number;
  progressPort?: MessagePort;
}

export default async function runTrainTask(task: TrainTask): Promise<TrainingSummary> {
  const { tf, name } = await initBackend(task.backend, { allowNative: task.allowNative });
  const { db } = openDatabase({ path: task.databasePath, synchronous: 'NORMAL', readonly: true });
  try {
    const readings = new ReadingStore(db);
    const fromMs = task.nowMs - task.forecast.training.historyDays * 86_400_000;
    const names = [task.forecast.target, ...task.forecast.covariates];
    // One short read transaction per series keeps WAL checkpoints on the ingest side from starving.
    const series = names.map((seriesName) => readings.read(seriesName, fromMs, task.nowMs));
    const checkpoints = new CheckpointStore(task.checkpointRoot, task.forecast.name, { keep: task.forecast.training.keepCheckpoints });
    return await trainForecastModel({
      tf,
      backend: name,
      forecast: task.forecast,
      series,
      nowMs: task.nowMs,
      checkpoints,
      onEpoch: (progress) => task.progressPort?.postMessage(progress),
    });
  } finally {
    db.close();
    task.progressPort?.close();
  }
}
