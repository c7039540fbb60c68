/**
 * One training run of a forecast's model: history → windows → fit with a checkpoint at every epoch end
 * → evaluation against persistence on the held-out (newest) windows.
 *
 * Runs wherever it is called from; the scheduler calls it inside a worker thread so that the main
 * thread keeps ingesting and forecasting.
 */
import { createHash } from 'node:crypto';
import type { ForecastConfig } from '../config/schema.js';
import { alignDown, prepareTrainingData, type SeriesReadings, type WindowSet } from '../windowing/index.js';
import type { BackendName, Tf } from './backend.js';
import type { CheckpointStore } from './checkpoint.js';
import { modelSpecFor } from './fromConfig.js';
import { errorSummary, persistenceForecast, type ErrorSummary } from './metrics.js';
import { progressCallback, type EpochLogs, type Verbosity } from './progress.js';
import { gatherRows, permutation, seededRandom } from './random.js';
import { modelToContent } from './serialize.js';

/** What a checkpoint must carry so that inference rebuilds exactly the training's features. */
export interface ModelMeta {
  version: string;
  forecast: string;
  shapeKey: string;
  epoch: number;
  featureNames: string[];
  scaler: { mean: number[]; std: number[] };
  steps: number;
  horizon: number;
  intervalSeconds: number;
  relativeToLast: boolean;
  maxGapSteps: number;
  calendar: ForecastConfig['calendar'];
  loss: number | null;
  valLoss: number | null;
  backend: BackendName;
  dataRange: { fromMs: number; toMs: number };
}

export interface EpochProgress {
  forecast: string;
  epoch: number;
  epochs: number;
  loss: number | null;
  valLoss: number | null;
  elapsedMs: number;
  etaMs: number;
}

export interface TrainingSummary {
  forecast: string;
  version: string;
  backend: BackendName;
  startedAt: number;
  durationMs: number;
  epochsCompleted: number;
  trainWindows: number;
  validationWindows: number;
  samplesPerSecond: number;
  loss: number[];
  valLoss: number[];
  metrics: { model: ErrorSummary; persistence: ErrorSummary } | null;
  dataRange: { fromMs: number; toMs: number };
  checkpointId: string | null;
}

export class NotEnoughHistoryError extends Error {
  override name = 'NotEnoughHistoryError';
  constructor(readonly forecast: string, readonly haveWindows: number, readonly needWindows: number, readonly neededSpanMs: number) {
    super(`forecast "${forecast}" has ${haveWindows} training windows, needs at least ${needWindows} (about ${Math.ceil(neededSpanMs / 3_600_000)} h of history without long gaps)`);
  }
}

/** Changes when anything that shapes the network or its inputs changes: an old checkpoint then no longer fits. */
export function shapeKeyFor(forecast: ForecastConfig): string {
  const shape = {
    layers: forecast.layers,
    steps: forecast.steps,
    horizon: forecast.horizon,
    interval: forecast.interval,
    covariates: forecast.covariates,
    calendar: forecast.calendar,
  };
  return createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 16);
}

export function versionFor(forecast: string, startedAt: number): string {
  return `${forecast}@${new Date(startedAt).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

/** The training grid: interval-aligned, ending at the last closed bucket, starting at the first target reading. */
export function trainingGrid(forecast: ForecastConfig, target: SeriesReadings, nowMs: number) {
  const intervalMs = forecast.interval * 1000;
  const endMs = alignDown(nowMs, intervalMs);
  let startMs = endMs - Math.floor((forecast.training.historyDays * 86_400_000) / intervalMs) * intervalMs;
  if (target.timestampsMs.length > 0) startMs = Math.max(startMs, alignDown(target.timestampsMs[0], intervalMs));
  return { gridStartMs: startMs, intervalMs, rows: Math.max(0, Math.round((endMs - startMs) / intervalMs)) };
}

export const MIN_TRAIN_WINDOWS = 32;

export interface TrainingInput {
  tf: Tf;
  backend: BackendName;
  forecast: ForecastConfig;
  /** [target, ...covariates], in the order of the config. */
  series: SeriesReadings[];
  nowMs: number;
  checkpoints: CheckpointStore;
  verbose?: Verbosity;
  write?: (text: string) => void;
  onEpoch?: (progress: EpochProgress) => void;
  signal?: AbortSignal;
}

function toTensors(tf: Tf, set: WindowSet) {
  return {
    xs: tf.tensor3d(set.inputs, [set.count, set.steps, set.features]),
    ys: tf.tensor2d(set.targets, [set.count, set.horizon]),
  };
}

/** Model and persistence errors in original units on the same windows. */
function evaluate(tf: Tf, model: import('@tensorflow/tfjs').LayersModel, set: WindowSet, scaler: { mean: number[]; std: number[] }) {
  if (set.count === 0) return null;
  const predictedScaled = tf.tidy(() => {
    const xs = tf.tensor3d(set.inputs, [set.count, set.steps, set.features]);
    return model.predict(xs) as import('@tensorflow/tfjs').Tensor;
  });
  const raw = predictedScaled.dataSync() as Float32Array;
  predictedScaled.dispose();
  const { mean, std } = { mean: scaler.mean[0], std: scaler.std[0] };
  const actual = new Float64Array(set.count * set.horizon);
  const predicted = new Float64Array(set.count * set.horizon);
  const anchors = new Float64Array(set.count);
  for (let window = 0; window < set.count; window++) {
    const anchor = set.anchors[window];
    anchors[window] = anchor * std + mean;
    for (let step = 0; step < set.horizon; step++) {
      const index = window * set.horizon + step;
      actual[index] = (set.targets[index] + anchor) * std + mean;
      predicted[index] = (raw[index] + anchor) * std + mean;
    }
  }
  return {
    model: errorSummary(actual, predicted, set.horizon),
    persistence: errorSummary(actual, persistenceForecast(anchors, set.horizon), set.horizon),
  };
}

export async function trainForecastModel(input: TrainingInput): Promise<TrainingSummary> {
  const { tf, forecast, checkpoints } = input;
  const startedAt = input.nowMs;
  const clockStart = performance.now();
  const version = versionFor(forecast.name, startedAt);
  const grid = trainingGrid(forecast, input.series[0], input.nowMs);
  const data = prepareTrainingData({
    ...grid,
    series: input.series,
    calendar: forecast.calendar,
    maxGapSteps: forecast.maxGapSteps,
    steps: forecast.steps,
    horizon: forecast.horizon,
    validationFraction: forecast.training.validationSplit,
    relativeToLast: true,
  });
  if (data.train.count < MIN_TRAIN_WINDOWS) {
    const neededRows = Math.ceil((MIN_TRAIN_WINDOWS + forecast.steps + forecast.horizon) / (1 - forecast.training.validationSplit));
    throw new NotEnoughHistoryError(forecast.name, data.train.count, MIN_TRAIN_WINDOWS, neededRows * grid.intervalMs);
  }

  const model = modelSpecFor(forecast, data.names.length).build(tf, { seed: forecast.training.seed });
  // An optimizer passed as an instance is not owned by the model: it is disposed below with the model.
  const optimizer = tf.train.adam(forecast.training.learningRate);
  model.compile({ optimizer, loss: 'meanSquaredError' });
  const validation = data.validation.count > 0 ? toTensors(tf, data.validation) : null;
  const dataRange = { fromMs: grid.gridStartMs, toMs: grid.gridStartMs + grid.rows * grid.intervalMs };
  const { epochs, batchSize } = forecast.training;
  const loss: number[] = [];
  const valLoss: number[] = [];
  let checkpointId: string | null = null;
  let abortedMidEpoch = false;

  const metaFor = (epoch: number, logs: EpochLogs | undefined): ModelMeta => ({
    version,
    forecast: forecast.name,
    shapeKey: shapeKeyFor(forecast),
    epoch,
    featureNames: data.names,
    scaler: data.scaler,
    steps: forecast.steps,
    horizon: forecast.horizon,
    intervalSeconds: forecast.interval,
    relativeToLast: true,
    maxGapSteps: forecast.maxGapSteps,
    calendar: forecast.calendar,
    loss: logs?.loss ?? null,
    valLoss: logs?.val_loss ?? null,
    backend: input.backend,
    dataRange,
  });

  const progress = progressCallback(input.verbose ?? 0, {
    epochs,
    batchesPerEpoch: Math.ceil(data.train.count / batchSize),
    write: input.write ?? ((text) => process.stdout.write(text)),
  });
  const abortWatcher = {
    onBatchEnd: async () => {
      if (input.signal?.aborted) {
        abortedMidEpoch = true;
        model.stopTraining = true;
      }
    },
  };
  // Checkpoint at every epoch end, so an interrupted training keeps its last completed epoch.
  const checkpointer = {
    onEpochEnd: async (epoch: number, logs?: EpochLogs) => {
      // tfjs still calls onEpochEnd after a stop inside the epoch: that half epoch is not a checkpoint.
      if (abortedMidEpoch) return;
      loss.push(logs?.loss ?? NaN);
      if (logs?.val_loss !== undefined) valLoss.push(logs.val_loss);
      const info = await checkpoints.save(await modelToContent(tf, model, metaFor(epoch + 1, logs) as unknown as Record<string, unknown>), epoch + 1);
      checkpointId = info.id;
      const elapsedMs = performance.now() - clockStart;
      input.onEpoch?.({
        forecast: forecast.name,
        epoch: epoch + 1,
        epochs,
        loss: logs?.loss ?? null,
        valLoss: logs?.val_loss ?? null,
        elapsedMs,
        etaMs: (elapsedMs / (epoch + 1)) * (epochs - epoch - 1),
      });
    },
  };

  // Shuffling inside the training part only, with our own seeded permutation (tfjs shuffles with
  // Math.random), one fit() call per epoch.
  const random = seededRandom(forecast.training.seed ?? Math.floor(Math.random() * 2 ** 32));
  const inputLength = data.train.steps * data.train.features;
  try {
    for (let epoch = 0; epoch < epochs && !abortedMidEpoch && !input.signal?.aborted; epoch++) {
      const order = permutation(data.train.count, random);
      const xs = tf.tensor3d(gatherRows(data.train.inputs, inputLength, order), [data.train.count, data.train.steps, data.train.features]);
      const ys = tf.tensor2d(gatherRows(data.train.targets, data.train.horizon, order), [data.train.count, data.train.horizon]);
      try {
        await model.fit(xs, ys, {
          initialEpoch: epoch,
          epochs: epoch + 1,
          batchSize,
          shuffle: false,
          verbose: 0,
          validationData: validation ? [validation.xs, validation.ys] : undefined,
          callbacks: [progress, abortWatcher, checkpointer],
        });
      } finally {
        xs.dispose();
        ys.dispose();
      }
    }
    const metrics = validation ? evaluate(tf, model, data.validation, data.scaler) : null;
    const durationMs = performance.now() - clockStart;
    return {
      forecast: forecast.name,
      version,
      backend: input.backend,
      startedAt,
      durationMs,
      epochsCompleted: loss.length,
      trainWindows: data.train.count,
      validationWindows: data.validation.count,
      samplesPerSecond: (data.train.count * loss.length) / (durationMs / 1000),
      loss,
      valLoss,
      metrics,
      dataRange,
      checkpointId,
    };
  } finally {
    optimizer.dispose();
    validation?.xs.dispose();
    validation?.ys.dispose();
    model.dispose();
  }
}
