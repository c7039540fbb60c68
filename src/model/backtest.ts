/**
 * A backtest of one forecast's configuration on recorded history: fit the scaler and the model on
 * [trainFrom, trainUntil), early-stop on [trainUntil, valUntil) (or the tail of the training range),
 * then, without retraining, forecast from every `stride`-th origin in [from, to) using only the values
 * before it, and score the model and every baseline on exactly the same origins.
 *
 * Features are built as the daemon builds them (same resampling, gap filling, calendar columns and
 * scaling), and an origin counts only when the daemon could have forecast from it: its input window is
 * complete and its last bucket was observed (a gap filled by interpolation would otherwise borrow from
 * the future).
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { ForecastConfig } from '../config/schema.js';
import {
  alignDown,
  alignUp,
  buildFeatureMatrix,
  cutWindows,
  fitFeatureScaler,
  matrixColumn,
  resampleMean,
  scaleMatrix,
  splitRowFor,
  subsetWindows,
  TARGET_FEATURE,
  windowsAtOrigins,
  windowsInRange,
  type SeriesReadings,
} from '../windowing/index.js';
import type { BackendName, Tf } from './backend.js';
import { useFusedLstm } from './fused/index.js';
import { trainingCallbacks, type Callback } from './callbacks.js';
import type { CheckpointStore } from './checkpoint.js';
import {
  actualsAt,
  baselinePredictions,
  commonOrigins,
  conformalWidths,
  fitLinear,
  intervalBounds,
  levelKey,
  maseScaleFor,
  resolveSeason,
  scoreMethods,
  type BaselineMethod,
  type IntervalWidths,
  type Season,
} from './evaluation/index.js';
import { fit } from './fit.js';
import { modelSpecFor } from './fromConfig.js';
import type { Verbosity } from './progress.js';
import { modelToContent } from './serialize.js';
import { datasetOf, MIN_TRAIN_WINDOWS, predictOriginal, shapeKeyFor, windowMetaFor, type ModelMeta } from './training.js';

export type BacktestMethod = 'model' | BaselineMethod;

export interface BacktestInput {
  tf: Tf;
  backend: BackendName;
  forecast: ForecastConfig;
  /** [target, ...covariates] in config order, covering [trainFrom, to + horizon intervals). */
  series: SeriesReadings[];
  trainFromMs?: number;
  trainUntilMs: number;
  valUntilMs?: number;
  fromMs: number;
  toMs: number;
  stride?: number;
  /** The interval level of the CSV's lower/upper; default the forecast's first level. */
  level?: number;
  verbose?: Verbosity;
  write?: (text: string) => void;
  onForecastProgress?: (done: number, total: number) => void;
  /** Where to save the trained model (as a daemon checkpoint), e.g. to serve it or to compare with Forecaster. */
  saveModelTo?: CheckpointStore;
  signal?: AbortSignal;
}

export interface BacktestMethodResult {
  /** How many origins were scored (the same for every method). */
  origins: number;
  mae: number;
  rmse: number;
  /** MSE on z-scored values (the training scaler), as the long-horizon literature reports it. */
  mseScaled: number | null;
  mase: number | null;
  maeByStep: number[];
  /** Per level key ("80", "95"): the share of actuals inside the interval calibrated on the validation range. */
  coverage: Record<string, number> | null;
}

export interface BacktestRow {
  originMs: number;
  /** 1 = the first interval after the origin. */
  step: number;
  tsMs: number;
  actual: number;
  predicted: number;
  lower: number | null;
  upper: number | null;
}

export interface BacktestResult {
  forecast: string;
  target: string;
  intervalSeconds: number;
  steps: number;
  horizon: number;
  stride: number;
  ranges: { trainFrom: string; trainUntil: string; validationFrom: string; validationUntil: string; from: string; to: string };
  training: { trainWindows: number; validationWindows: number; epochs: number; bestEpoch: number | null; stoppedEarly: boolean; durationMs: number };
  season: Season;
  maseScale: { lag: number; mae: number } | null;
  levels: number[];
  csvLevel: number;
  /** Candidate origins in [from, to) with this stride, and how many of them could not be forecast (gaps). */
  candidates: number;
  skippedOrigins: number;
  /** The scored origins (epoch ms), the same for every method. */
  origins: number[];
  methods: Partial<Record<BacktestMethod, BacktestMethodResult>>;
  rows: BacktestRow[];
}

export class BacktestError extends Error {
  override name = 'BacktestError';
}

const iso = (ms: number) => new Date(ms).toISOString();

export async function runBacktest(input: BacktestInput): Promise<BacktestResult> {
  const { tf, forecast } = input;
  const { steps, horizon } = forecast;
  const stride = input.stride ?? 1;
  if (!Number.isInteger(stride) || stride < 1) throw new BacktestError(`--stride must be a positive whole number, got ${stride}`);
  const intervalMs = forecast.interval * 1000;
  const target = input.series[0];
  // Readings come sorted by time (ReadingStore.read): the first one opens the training range by default.
  const trainFromMs = input.trainFromMs ?? (target.timestampsMs.length > 0 ? target.timestampsMs[0] : NaN);
  if (!Number.isFinite(trainFromMs)) throw new BacktestError(`no readings of "${forecast.target}" to train on`);
  const order: Array<[string, number | undefined]> = [
    ['--train-from', trainFromMs],
    ['--train-until', input.trainUntilMs],
    ['--val-until', input.valUntilMs],
  ];
  for (let index = 1; index < order.length; index++) {
    const [name, value] = order[index];
    const [previousName, previous] = order[index - 1];
    if (value !== undefined && previous !== undefined && !(value > previous)) throw new BacktestError(`${name} must be after ${previousName}`);
  }
  if (!(input.toMs > input.fromMs)) throw new BacktestError('--to must be after --from');
  if (input.fromMs < input.trainUntilMs)
    throw new BacktestError('--from must not be before --train-until: the model would be tested on what it trained on');
  if (input.valUntilMs !== undefined && input.fromMs < input.valUntilMs)
    throw new BacktestError('--from must not be before --val-until: early stopping would have seen the test range');

  // An explicit --train-from starts at the first whole bucket after it; by default the first reading's bucket counts.
  const gridStartMs = input.trainFromMs !== undefined ? alignUp(trainFromMs, intervalMs) : alignDown(trainFromMs, intervalMs);
  const rowAt = (ms: number) => Math.floor((ms - gridStartMs) / intervalMs);
  const rows = rowAt(alignUp(input.toMs, intervalMs)) + horizon;
  const features = buildFeatureMatrix({
    gridStartMs,
    intervalMs,
    rows,
    series: input.series,
    calendar: forecast.calendar,
    maxGapSteps: forecast.maxGapSteps,
  });
  const trainingRows = rowAt(alignDown(input.trainUntilMs, intervalMs));
  let trainEnd: number;
  let validationStart: number;
  let validationEnd: number;
  if (input.valUntilMs !== undefined) {
    trainEnd = trainingRows;
    validationStart = trainingRows;
    validationEnd = rowAt(alignDown(input.valUntilMs, intervalMs));
  } else {
    trainEnd = splitRowFor(trainingRows, forecast.training.validationSplit);
    validationStart = trainEnd;
    validationEnd = trainingRows;
  }
  const scaler = fitFeatureScaler(features.matrix, rows, features.features, trainEnd, input.series.length);
  const scaled = scaleMatrix(features.matrix, rows, features.features, scaler);
  const windows = cutWindows(scaled, rows, features.features, { steps, horizon, targetFeature: TARGET_FEATURE, relativeToLast: true });
  const train = windowsInRange(windows, 0, trainEnd);
  const validation = windowsInRange(windows, validationStart, validationEnd);
  if (train.count < MIN_TRAIN_WINDOWS) {
    throw new BacktestError(`[train-from, train-until) gives ${train.count} training windows, at least ${MIN_TRAIN_WINDOWS} are needed`);
  }

  // --- fit, as a training would (the same stack, optimizer and callbacks), with no checkpoints
  const clockStart = performance.now();
  const model = modelSpecFor(forecast, features.features).build(tf, {
    seed: forecast.training.seed,
    fusedLstm: useFusedLstm(input.backend, forecast.training.lstmImplementation),
  });
  const optimizer = tf.train.adam(forecast.training.learningRate);
  model.compile({ optimizer, loss: 'meanSquaredError' });
  try {
    // The training's own callbacks (with no checkpoints: a backtest keeps nothing).
    const { earlyStopping, reduceLr } = trainingCallbacks(forecast.training, validation.count > 0);
    const callbacks: Callback[] = [earlyStopping, reduceLr].filter((callback): callback is NonNullable<typeof callback> => callback !== null);
    const fitted = await fit(tf, model, datasetOf(train), {
      epochs: forecast.training.epochs,
      batchSize: forecast.training.batchSize,
      validationData: validation.count > 0 ? datasetOf(validation) : undefined,
      seed: forecast.training.seed,
      verbose: input.verbose ?? 0,
      write: input.write,
      callbacks,
      signal: input.signal,
    });
    if (fitted.aborted) throw new BacktestError('backtest aborted');
    const bestEpoch = earlyStopping?.restoreBestWeights && earlyStopping.bestEpoch >= 0 ? earlyStopping.bestEpoch + 1 : null;
    const trainingDurationMs = performance.now() - clockStart;
    if (input.saveModelTo)
      await saveModel(tf, model, input, {
        scaler,
        names: features.names,
        gridStartMs,
        trainEndMs: gridStartMs + trainEnd * intervalMs,
        epoch: bestEpoch ?? fitted.nextEpoch,
      });

    // --- baselines fitted on the training part only
    const y = matrixColumn(features.matrix, rows, features.features, TARGET_FEATURE);
    const season = resolveSeason(forecast.evaluation.seasonLength, forecast.interval, y.subarray(0, trainEnd));
    const linear = fitLinear(y, train.originRows, { steps, horizon, ridge: forecast.evaluation.linearRidge, scale: scaler.std[TARGET_FEATURE] });
    const targetStd = scaler.std[TARGET_FEATURE];
    const levels = [...forecast.evaluation.intervals];
    const csvLevel = input.level ?? levels[0];
    if (!levels.includes(csvLevel)) levels.push(csvLevel);

    // --- the test origins: every stride-th origin in [from, to) the daemon could have forecast from
    const observedLast = lastBucketObserved(input.series, gridStartMs, intervalMs, rows);
    const cleanOrigins = new Set(windows.originRows);
    const firstOrigin = Math.max(rowAt(alignUp(input.fromMs, intervalMs)), steps);
    const endOrigin = rowAt(alignUp(input.toMs, intervalMs));
    const candidates: number[] = [];
    for (let origin = firstOrigin; origin < endOrigin; origin += stride) candidates.push(origin);
    const usable = Int32Array.from(candidates.filter((origin) => cleanOrigins.has(origin) && observedLast[origin - 1] === 1));
    const { origins, season: seasonLength } = commonOrigins(y, usable, horizon, season.length);
    if (origins.length === 0) throw new BacktestError(`no origin in [from, to) has a complete input window and ${horizon} actual values after it`);

    // --- calibration of the intervals on the validation windows (the same methods, the same season)
    const calibration: Partial<Record<BacktestMethod, IntervalWidths>> = {};
    const validationOrigins = commonOrigins(y, validation.originRows, horizon, seasonLength).origins;
    if (validationOrigins.length > 0) {
      const validationSet = windowsAtOrigins(validation, validationOrigins);
      const validationPredictions: Partial<Record<BacktestMethod, Float64Array>> = {
        model: predictOriginal(tf, model, validationSet, scaler),
        ...baselinePredictions(y, validationOrigins, horizon, { season: seasonLength, linear }),
      };
      const validationActual = actualsAt(y, validationOrigins, horizon);
      for (const [method, predicted] of Object.entries(validationPredictions) as Array<[BacktestMethod, Float64Array]>) {
        calibration[method] = conformalWidths(validationActual, predicted, horizon, levels);
      }
    }

    // --- forecasts at the test origins, in batches, with progress
    const testSet = windowsAtOrigins(windows, origins);
    const modelPredictions = new Float64Array(origins.length * horizon);
    const batch = 256;
    for (let from = 0; from < testSet.count; from += batch) {
      if (input.signal?.aborted) throw new BacktestError('backtest aborted');
      const to = Math.min(testSet.count, from + batch);
      modelPredictions.set(predictOriginal(tf, model, subsetWindows(testSet, from, to), scaler), from * horizon);
      input.onForecastProgress?.(to, testSet.count);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const predictions: Partial<Record<BacktestMethod, Float64Array>> = {
      model: modelPredictions,
      ...baselinePredictions(y, origins, horizon, { season: seasonLength, linear }),
    };
    const actual = actualsAt(y, origins, horizon);
    const maseScale = maseScaleFor(y, trainEnd, seasonLength ?? season.length);
    const hasCalibration = Object.keys(calibration).length > 0;
    const scored = scoreMethods({
      actual,
      horizon,
      predictions,
      levels,
      maseScale: maseScale?.mae ?? null,
      targetStd,
      calibration: hasCalibration ? calibration : undefined,
    });
    const methods: Partial<Record<BacktestMethod, BacktestMethodResult>> = {};
    for (const [method, scores] of Object.entries(scored) as Array<[BacktestMethod, NonNullable<(typeof scored)[BacktestMethod]>]>) {
      methods[method] = {
        origins: scores.windows,
        mae: scores.mae,
        rmse: scores.rmse,
        mseScaled: scores.mseScaled,
        mase: scores.mase,
        maeByStep: scores.maeByStep,
        coverage: hasCalibration ? Object.fromEntries(levels.map((level, index) => [levelKey(level), scores.coverage[index]])) : null,
      };
    }

    const csvWidths = calibration.model?.[levels.indexOf(csvLevel)] ?? null;
    const bounds = csvWidths ? intervalBounds(modelPredictions, horizon, csvWidths) : null;
    const rowsOut: BacktestRow[] = [];
    origins.forEach((origin, window) => {
      const originMs = gridStartMs + origin * intervalMs;
      for (let step = 0; step < horizon; step++) {
        const index = window * horizon + step;
        rowsOut.push({
          originMs,
          step: step + 1,
          tsMs: originMs + step * intervalMs,
          actual: actual[index],
          predicted: modelPredictions[index],
          lower: bounds ? bounds.lower[index] : null,
          upper: bounds ? bounds.upper[index] : null,
        });
      }
    });
    return {
      forecast: forecast.name,
      target: forecast.target,
      intervalSeconds: forecast.interval,
      steps,
      horizon,
      stride,
      ranges: {
        trainFrom: iso(gridStartMs),
        trainUntil: iso(gridStartMs + trainEnd * intervalMs),
        validationFrom: iso(gridStartMs + validationStart * intervalMs),
        validationUntil: iso(gridStartMs + validationEnd * intervalMs),
        from: iso(input.fromMs),
        to: iso(input.toMs),
      },
      training: {
        trainWindows: train.count,
        validationWindows: validation.count,
        epochs: fitted.epochsRun,
        bestEpoch,
        stoppedEarly: fitted.stoppedEarly,
        durationMs: trainingDurationMs,
      },
      season: seasonLength === season.length ? season : { length: null, source: 'none' },
      maseScale,
      levels,
      csvLevel,
      candidates: candidates.length,
      skippedOrigins: candidates.length - origins.length,
      origins: Array.from(origins, (origin) => gridStartMs + origin * intervalMs),
      methods,
      rows: rowsOut,
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

/** 1 where every series has a reading in the bucket (before gap filling), 0 elsewhere. */
function lastBucketObserved(series: SeriesReadings[], gridStartMs: number, intervalMs: number, rows: number): Uint8Array {
  const observed = new Uint8Array(rows).fill(1);
  for (const { timestampsMs, values } of series) {
    const raw = resampleMean(timestampsMs, values, gridStartMs, intervalMs, rows);
    for (let row = 0; row < rows; row++) if (!Number.isFinite(raw[row])) observed[row] = 0;
  }
  return observed;
}

async function saveModel(
  tf: Tf,
  model: LayersModel,
  input: BacktestInput,
  info: { scaler: ModelMeta['scaler']; names: string[]; gridStartMs: number; trainEndMs: number; epoch: number },
): Promise<void> {
  const { forecast } = input;
  const meta: ModelMeta = {
    version: `${forecast.name}@backtest`,
    forecast: forecast.name,
    shapeKey: shapeKeyFor(forecast),
    epoch: info.epoch,
    featureNames: info.names,
    scaler: info.scaler,
    ...windowMetaFor(forecast),
    loss: null,
    valLoss: null,
    backend: input.backend,
    dataRange: { fromMs: info.gridStartMs, toMs: info.trainEndMs },
    run: { finished: true, totalEpochs: forecast.training.epochs, learningRate: forecast.training.learningRate },
  };
  await input.saveModelTo!.save(await modelToContent(tf, model, meta), info.epoch);
}

const csvNumber = (value: number | null) => (value === null || !Number.isFinite(value) ? '' : String(Number(value.toFixed(6))));

/** `origin,step,ts,actual,predicted,lower,upper`, one row per origin and step, original units, ISO 8601 UTC times. */
export function backtestCsv(result: BacktestResult): string {
  const lines = ['origin,step,ts,actual,predicted,lower,upper'];
  for (const row of result.rows) {
    lines.push(
      [iso(row.originMs), row.step, iso(row.tsMs), csvNumber(row.actual), csvNumber(row.predicted), csvNumber(row.lower), csvNumber(row.upper)].join(
        ',',
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}

const METHOD_LABELS: Record<BacktestMethod, string> = {
  model: 'model (LSTM)',
  persistence: 'persistence',
  seasonal_naive: 'seasonal naive',
  linear: 'linear (NLinear)',
};

/** The metrics table a person reads: one line per method, the best MAE marked. */
export function backtestTable(result: BacktestResult): string {
  const levelKeys = result.levels.map(levelKey);
  const header = ['method', 'MAE', 'RMSE', 'MSE(scaled)', 'MASE', ...levelKeys.map((key) => `cov@${key}%`)];
  const entries = Object.entries(result.methods) as Array<[BacktestMethod, BacktestMethodResult]>;
  const bestMae = Math.min(...entries.map(([, scores]) => scores.mae));
  const format = (value: number | null | undefined, digits = 4) =>
    value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toPrecision(digits);
  const body = entries.map(([method, scores]) => [
    METHOD_LABELS[method] + (scores.mae === bestMae ? ' *' : ''),
    format(scores.mae),
    format(scores.rmse),
    format(scores.mseScaled),
    format(scores.mase),
    ...levelKeys.map((key) => (scores.coverage ? `${(scores.coverage[key] * 100).toFixed(1)}%` : '–')),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...body.map((line) => line[column].length)));
  const render = (cells: string[]) =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ');
  const season = result.season.length ? `${result.season.length} intervals (${result.season.source})` : 'none';
  return [
    `backtest of "${result.forecast}" (${result.target}): ${result.origins.length} origins from ${result.ranges.from} to ${result.ranges.to}, stride ${result.stride}, horizon ${result.horizon}` +
      (result.skippedOrigins > 0 ? ` (${result.skippedOrigins} of ${result.candidates} origins skipped: gaps)` : ''),
    `trained on [${result.ranges.trainFrom}, ${result.ranges.trainUntil}), validated on [${result.ranges.validationFrom}, ${result.ranges.validationUntil}): ${result.training.trainWindows} + ${result.training.validationWindows} windows, ${result.training.epochs} epochs${result.training.stoppedEarly ? ' (stopped early)' : ''}`,
    `season ${season}; MASE scale: in-sample ${result.maseScale ? `lag-${result.maseScale.lag} naive MAE ${result.maseScale.mae.toPrecision(4)}` : 'unavailable'}; intervals: conformal on the validation windows`,
    '',
    render(header),
    ...body.map(render),
    '',
    '* lowest MAE. Every method is scored on the same origins, in original units (MSE on values scaled by the training std).',
    '',
  ].join('\n');
}
