/**
 * One training run of a forecast's model: history → windows → fit (Keras callbacks: early stopping,
 * reduce-LR-on-plateau, a checkpoint at every epoch end keeping the latest and the best) → evaluation of
 * the new model, the serving one and every baseline on the same newest held-out windows → champion /
 * challenger decision → the winner, if it is the new model, becomes the serving checkpoint.
 *
 * An interrupted run resumes from its last epoch checkpoint; otherwise a retrain can warm-start from
 * the serving model's weights. Runs wherever it is called from; the scheduler calls it inside a worker
 * thread so that the main thread keeps ingesting and forecasting.
 */
import { createHash } from 'node:crypto';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { ForecastConfig } from '../config/schema.js';
import {
  alignDown,
  cutWindows,
  matrixColumn,
  prepareTrainingData,
  scaleMatrix,
  TARGET_FEATURE,
  windowsAtOrigins,
  type ScalerStats,
  type SeriesReadings,
  type WindowSet,
} from '../windowing/index.js';
import type { BackendName, Tf } from './backend.js';
import { getLearningRate, ModelCheckpoint, trainingCallbacks, type Callback, type Logs } from './callbacks.js';
import type { CheckpointContent, CheckpointStore } from './checkpoint.js';
import {
  actualsAt,
  baselinePredictions,
  commonOrigins,
  decidePromotion,
  fitLinear,
  maseScaleFor,
  resolveSeason,
  scoreMethods,
  type Evaluation,
  type Method,
  type PromotionDecision,
} from './evaluation/index.js';
import { fit, type ArrayDataset } from './fit.js';
import { modelSpecFor } from './fromConfig.js';
import type { ErrorSummary } from './evaluation/metrics.js';
import type { EpochLogs, Verbosity } from './progress.js';
import { useFusedLstm } from './fused/index.js';
import { modelFromContent, modelToContent } from './serialize.js';
import { CHECKPOINT_META_VERSION, parseCheckpointMeta, processTimeZone, type CheckpointMeta } from '../contracts/checkpointMeta.js';

/** What a checkpoint must carry so that inference rebuilds exactly the training's features (src/contracts). */
export type ModelMeta = CheckpointMeta;

export interface EpochProgress {
  forecast: string;
  epoch: number;
  epochs: number;
  loss: number | null;
  valLoss: number | null;
  elapsedMs: number;
  /** Time left if every remaining epoch runs; early stopping can make it shorter. */
  etaMs: number;
}

export interface TrainingSummary {
  forecast: string;
  version: string;
  backend: BackendName;
  startedAt: number;
  durationMs: number;
  /** Epochs run by this call (a resumed run counts only its own). */
  epochsCompleted: number;
  trainWindows: number;
  validationWindows: number;
  samplesPerSecond: number;
  /** Per epoch of this call, training and validation loss (MSE on scaled values). */
  loss: number[];
  valLoss: number[];
  /** Model and persistence on the held-out windows (kept for consumers of earlier versions; see `evaluation`). */
  metrics: { model: ErrorSummary; persistence: ErrorSummary } | null;
  dataRange: { fromMs: number; toMs: number };
  /** The newest epoch checkpoint of this run. */
  checkpointId: string | null;
  // The fields below are absent from the records of earlier forecastd versions.
  /** `aborted`: stopped by the signal; its checkpoints stay unfinished, so the next run resumes it. */
  status?: 'finished' | 'aborted';
  /** The epoch this call started from: > 0 when it resumed an interrupted run. */
  initialEpoch?: number;
  /** Per epoch of this call, the learning rate used. */
  learningRate?: number[];
  /** 1-based epoch whose weights the model ended with (early stopping's best), null without validation. */
  bestEpoch?: number | null;
  stoppedEarly?: boolean;
  resumedFrom?: { version: string; epoch: number; checkpoint: string } | null;
  warmStartedFrom?: string | null;
  configHash?: string | null;
  shapeKey?: string | null;
  featureNames?: string[] | null;
  scaler?: ScalerStats | null;
  evaluation?: Evaluation | null;
  decision?: PromotionDecision | null;
  /** The serving checkpoint written when this model was promoted. */
  servingCheckpointId?: string | null;
}

export class NotEnoughHistoryError extends Error {
  override name = 'NotEnoughHistoryError';
  constructor(
    readonly forecast: string,
    readonly haveWindows: number,
    readonly needWindows: number,
    readonly neededSpanMs: number,
    /** How much more history is needed, and when it will be there if the sensor keeps reporting (estimates). */
    readonly warmUp: { missingMs: number; readyAtMs: number } | null = null,
  ) {
    super(
      `forecast "${forecast}" has ${haveWindows} training windows, needs at least ${needWindows} (about ${Math.ceil(neededSpanMs / 3_600_000)} h of history without long gaps)` +
        (warmUp ? `; about ${Math.ceil(warmUp.missingMs / 3_600_000)} h more, ready around ${new Date(warmUp.readyAtMs).toISOString()}` : ''),
    );
  }
}

/** Whether an error (or a message that crossed a thread) says "not enough history yet" rather than "broken". */
export const isNotEnoughHistory = (error: { name?: string; message: string }) =>
  error.name === 'NotEnoughHistoryError' || /training windows, needs at least/.test(error.message);

/** The part of a checkpoint's meta that tells inference how to rebuild the training's windows. */
export function windowMetaFor(forecast: ForecastConfig) {
  return {
    metaVersion: CHECKPOINT_META_VERSION,
    // The zone the calendar features were computed in (this process's local zone).
    timeZone: processTimeZone(),
    steps: forecast.steps,
    horizon: forecast.horizon,
    intervalSeconds: forecast.interval,
    relativeToLast: true,
    maxGapSteps: forecast.maxGapSteps,
    calendar: forecast.calendar,
  };
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

/** Changes with any setting of the forecast (model, training, evaluation): recorded with every version. */
export function configHashFor(forecast: ForecastConfig): string {
  return createHash('sha256').update(JSON.stringify(forecast)).digest('hex').slice(0, 16);
}

export function versionFor(forecast: string, startedAt: number): string {
  return `${forecast}@${new Date(startedAt)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
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

/** Grid rows of gap-free history a first training needs. */
export function historyNeededRows(forecast: ForecastConfig): number {
  return Math.ceil((MIN_TRAIN_WINDOWS + forecast.steps + forecast.horizon) / (1 - forecast.training.validationSplit));
}

/**
 * How much more history a forecast needs before its first training, and when that will be: the rows
 * missing to the minimum, or (when gaps cost windows) one new window per interval of the training part.
 */
export function warmUpEstimate(
  forecast: ForecastConfig,
  grid: { gridStartMs: number; intervalMs: number; rows: number },
  haveWindows: number,
): { missingMs: number; readyAtMs: number } {
  const missingRows = Math.max(
    historyNeededRows(forecast) - grid.rows,
    Math.ceil((MIN_TRAIN_WINDOWS - haveWindows) / (1 - forecast.training.validationSplit)),
    1,
  );
  const missingMs = missingRows * grid.intervalMs;
  return { missingMs, readyAtMs: grid.gridStartMs + grid.rows * grid.intervalMs + missingMs };
}

export interface TrainingInput {
  tf: Tf;
  backend: BackendName;
  forecast: ForecastConfig;
  /** [target, ...covariates], in the order of the config. */
  series: SeriesReadings[];
  nowMs: number;
  /** The run's epoch checkpoints (the latest); an unfinished one here is resumed. */
  checkpoints: CheckpointStore;
  /** The best epoch of the run by val_loss. */
  best?: CheckpointStore;
  /** The serving model: warm-start source, the champion to beat, and where a promoted model is written. */
  serving?: CheckpointStore;
  /**
   * The version an operator pinned (model_pins), if any: it is the champion, and a promoted model is written to the
   * serving store but does not replace it (the decision records `pinned`) until the pin is cleared.
   */
  pinnedVersion?: string | null;
  verbose?: Verbosity;
  write?: (text: string) => void;
  onEpoch?: (progress: EpochProgress) => void;
  signal?: AbortSignal;
}

export const datasetOf = (set: WindowSet): ArrayDataset => ({
  count: set.count,
  x: set.inputs,
  sampleShape: [set.steps, set.features],
  y: set.targets,
  targetSize: set.horizon,
});

/** The model's forecasts for every window of `set`, in original units ([windows × horizon]). */
export function predictOriginal(tf: Tf, model: LayersModel, set: WindowSet, scaler: ScalerStats, batch = 1024): Float64Array {
  const out = new Float64Array(set.count * set.horizon);
  const mean = scaler.mean[TARGET_FEATURE];
  const std = scaler.std[TARGET_FEATURE];
  const windowSize = set.steps * set.features;
  for (let from = 0; from < set.count; from += batch) {
    const to = Math.min(set.count, from + batch);
    const prediction = tf.tidy(
      () => model.predict(tf.tensor3d(set.inputs.subarray(from * windowSize, to * windowSize), [to - from, set.steps, set.features])) as Tensor,
    );
    const raw = prediction.dataSync() as Float32Array;
    prediction.dispose();
    for (let window = from; window < to; window++) {
      const anchor = set.anchors[window];
      for (let step = 0; step < set.horizon; step++) {
        const index = window * set.horizon + step;
        out[index] = (raw[index - from * set.horizon] + anchor) * std + mean;
      }
    }
  }
  return out;
}

interface LoadedModel {
  content: CheckpointContent;
  meta: ModelMeta;
  id: string;
}

/** The newest checkpoint of an interrupted run that can continue with this configuration, or null. */
async function resumableRun(store: CheckpointStore, shapeKey: string, epochs: number): Promise<LoadedModel | null> {
  const latest = await store.loadLatest();
  if (!latest) return null;
  const meta = metaOrNull(latest.content.meta, latest.info.id);
  if (!meta?.run || meta.run.finished || meta.shapeKey !== shapeKey || !(meta.epoch < epochs)) return null;
  return { content: latest.content, meta, id: latest.info.id };
}

async function loadServing(store: CheckpointStore | undefined, pinnedVersion: string | null): Promise<LoadedModel | null> {
  const loaded = (pinnedVersion ? await store?.loadVersion(pinnedVersion) : null) ?? (await store?.loadLatest());
  const meta = loaded ? metaOrNull(loaded.content.meta, loaded.info.id) : null;
  return loaded && meta ? { content: loaded.content, meta, id: loaded.info.id } : null;
}

/** The checkpoint's validated meta, or null when it does not validate: such a checkpoint is neither resumed nor warm-started from. */
function metaOrNull(raw: unknown, id: string): ModelMeta | null {
  try {
    return parseCheckpointMeta(raw, `checkpoint ${id}`);
  } catch {
    return null;
  }
}

export async function trainForecastModel(input: TrainingInput): Promise<TrainingSummary> {
  const { tf, forecast, checkpoints } = input;
  const startedAt = input.nowMs;
  const clockStart = performance.now();
  const shapeKey = shapeKeyFor(forecast);
  const { epochs, batchSize } = forecast.training;
  await checkpoints.removeStaleTemp();
  await input.best?.removeStaleTemp();

  const resume = await resumableRun(checkpoints, shapeKey, epochs);
  const version = resume?.meta.version ?? versionFor(forecast.name, startedAt);
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
    // A resumed run's weights expect its inputs scaled as before.
    scaler: resume?.meta.scaler,
  });
  if (data.train.count < MIN_TRAIN_WINDOWS) {
    throw new NotEnoughHistoryError(
      forecast.name,
      data.train.count,
      MIN_TRAIN_WINDOWS,
      historyNeededRows(forecast) * grid.intervalMs,
      warmUpEstimate(forecast, grid, data.train.count),
    );
  }

  const pinnedVersion = input.pinnedVersion ?? null;
  const champion = await loadServing(input.serving, pinnedVersion);
  const championCompatible = champion !== null && champion.meta.shapeKey === shapeKey;
  let model: LayersModel;
  let initialEpoch = 0;
  let warmStartedFrom: string | null = null;
  const fusedLstm = useFusedLstm(input.backend, forecast.training.lstmImplementation);
  if (resume) {
    model = await modelFromContent(tf, resume.content, { fusedLstm });
    initialEpoch = resume.meta.epoch;
  } else if (forecast.training.warmStart && championCompatible) {
    model = await modelFromContent(tf, champion.content, { fusedLstm });
    warmStartedFrom = champion.meta.version;
  } else {
    model = modelSpecFor(forecast, data.names.length).build(tf, { seed: forecast.training.seed, fusedLstm });
  }
  // An optimizer passed as an instance is not owned by the model: it is disposed below with the model.
  const optimizer = tf.train.adam(resume?.meta.run?.learningRate ?? forecast.training.learningRate);
  model.compile({ optimizer, loss: 'meanSquaredError' });

  const dataRange = { fromMs: grid.gridStartMs, toMs: grid.gridStartMs + grid.rows * grid.intervalMs };
  const loss: number[] = [];
  const valLoss: number[] = [];
  const learningRate: number[] = [];
  const hasValidation = data.validation.count > 0;

  const metaFor = (epoch: number, logs: EpochLogs | undefined, finished: boolean): ModelMeta => ({
    version,
    forecast: forecast.name,
    shapeKey,
    epoch,
    featureNames: data.names,
    scaler: data.scaler,
    ...windowMetaFor(forecast),
    loss: logs?.loss ?? null,
    valLoss: logs?.val_loss ?? null,
    backend: input.backend,
    dataRange,
    run: { finished, totalEpochs: epochs, learningRate: getLearningRate(model) },
  });

  const { earlyStopping, reduceLr } = trainingCallbacks(forecast.training, hasValidation);
  let checkpointId: string | null = null;
  const checkpointer = new ModelCheckpoint({
    latest: checkpoints,
    best: input.best,
    meta: (epoch, logs, finished) => metaFor(epoch + 1, logs, finished),
    onSaved: ({ latest }) => {
      checkpointId = latest.id;
    },
  });
  let learningRateAtEpochBegin = getLearningRate(model);
  const reporter: Callback = {
    onEpochBegin: () => {
      learningRateAtEpochBegin = getLearningRate(model);
    },
    onEpochEnd: (epoch: number, logs?: Logs) => {
      loss.push(logs?.loss ?? NaN);
      if (logs?.val_loss !== undefined) valLoss.push(logs.val_loss);
      learningRate.push(learningRateAtEpochBegin);
      const elapsedMs = performance.now() - clockStart;
      const done = epoch + 1 - initialEpoch;
      input.onEpoch?.({
        forecast: forecast.name,
        epoch: epoch + 1,
        epochs,
        loss: logs?.loss ?? null,
        valLoss: logs?.val_loss ?? null,
        elapsedMs,
        etaMs: (elapsedMs / done) * (epochs - epoch - 1),
      });
    },
  };
  // Keras order: EarlyStopping before the checkpoint, so that the checkpoint knows whether its epoch is the last.
  const callbacks = [earlyStopping, reduceLr, checkpointer, reporter].filter(
    (callback): callback is NonNullable<typeof callback> => callback !== null,
  );

  try {
    const result = await fit(tf, model, datasetOf(data.train), {
      epochs,
      initialEpoch,
      batchSize,
      validationData: hasValidation ? datasetOf(data.validation) : undefined,
      // Shuffling inside the training part only, with our own seeded permutation (tfjs shuffles with Math.random).
      seed: forecast.training.seed,
      verbose: input.verbose ?? 0,
      write: input.write,
      callbacks,
      signal: input.signal,
    });
    const bestEpoch =
      earlyStopping?.restoreBestWeights && earlyStopping.bestEpoch >= 0
        ? earlyStopping.bestEpoch + 1
        : hasValidation && result.epochsRun > 0
          ? result.nextEpoch
          : null;
    const base = {
      forecast: forecast.name,
      version,
      backend: input.backend,
      startedAt,
      epochsCompleted: loss.length,
      initialEpoch,
      trainWindows: data.train.count,
      validationWindows: data.validation.count,
      loss,
      valLoss,
      learningRate,
      bestEpoch,
      stoppedEarly: result.stoppedEarly,
      resumedFrom: resume ? { version: resume.meta.version, epoch: resume.meta.epoch, checkpoint: resume.id } : null,
      warmStartedFrom,
      configHash: configHashFor(forecast),
      shapeKey,
      featureNames: data.names,
      scaler: data.scaler,
      dataRange,
      checkpointId,
    };
    const finish = (rest: {
      status: 'finished' | 'aborted';
      metrics: TrainingSummary['metrics'];
      evaluation: Evaluation | null;
      decision: PromotionDecision | null;
      servingCheckpointId: string | null;
    }): TrainingSummary => {
      const durationMs = performance.now() - clockStart;
      return { ...base, ...rest, durationMs, samplesPerSecond: (data.train.count * loss.length) / (durationMs / 1000) };
    };
    if (result.aborted) return finish({ status: 'aborted', metrics: null, evaluation: null, decision: null, servingCheckpointId: null });

    const evaluation = hasValidation
      ? await evaluateOnHeldOut({ tf, forecast, data, model, champion: championCompatible ? champion : null, gridStartMs: grid.gridStartMs })
      : null;
    const decision = evaluation
      ? decidePromotion({
          evaluation,
          challengerVersion: version,
          championVersion: champion?.meta.version ?? null,
          championIncompatible: champion !== null && !championCompatible,
        })
      : unverifiedDecision(version, championCompatible ? champion.meta.version : null);
    if (decision.promoted && pinnedVersion !== null && championCompatible && champion.meta.version === pinnedVersion) {
      holdPin(decision, pinnedVersion, evaluation);
    }
    let servingCheckpointId: string | null = null;
    if (decision.promoted && input.serving) {
      const finalEpoch = bestEpoch ?? initialEpoch + loss.length;
      const content = await modelToContent(tf, model, metaFor(finalEpoch, { loss: loss.at(-1), val_loss: valLoss.at(-1) }, true));
      servingCheckpointId = (await input.serving.save(content, finalEpoch)).id;
    }
    const metrics =
      evaluation?.methods.model && evaluation.methods.persistence
        ? { model: errorPart(evaluation.methods.model), persistence: errorPart(evaluation.methods.persistence) }
        : null;
    return finish({ status: 'finished', metrics, evaluation, decision, servingCheckpointId });
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

/** A promotion under a pin: the new model is kept in the serving store, the pinned one goes on serving. */
function holdPin(decision: PromotionDecision, pinnedVersion: string, evaluation: Evaluation | null): void {
  const pinned = evaluation?.methods.champion;
  const persistence = evaluation?.methods.persistence;
  const beats = pinned && persistence ? pinned.mae < persistence.mae : !evaluation;
  decision.pinned = pinnedVersion;
  decision.servingVersion = pinnedVersion;
  decision.modelBeatsPersistence = beats;
  decision.servedBy = beats ? 'model' : (decision.bestBaseline?.method ?? 'persistence');
  decision.reason += `; pinned: ${pinnedVersion} keeps serving until the pin is cleared (forecastd models --unpin)`;
}

const errorPart = ({ mae, rmse, maeByStep }: ErrorSummary): ErrorSummary => ({ mae, rmse, maeByStep });

/** Without held-out windows nothing can be compared: a first model serves unverified, a champion stays. */
function unverifiedDecision(version: string, championVersion: string | null): PromotionDecision {
  const promoted = championVersion === null;
  return {
    promoted,
    servingVersion: promoted ? version : championVersion,
    servedBy: 'model',
    modelBeatsPersistence: false,
    bestBaseline: null,
    reason: promoted
      ? 'no held-out windows (validationSplit 0): the first model serves unverified'
      : 'no held-out windows (validationSplit 0): the serving model is kept',
  };
}

/**
 * The new model, the serving one (with its own scaler, on the same origins) and every baseline on the
 * newest held-out windows, in original units.
 */
async function evaluateOnHeldOut(input: {
  tf: Tf;
  forecast: ForecastConfig;
  data: ReturnType<typeof prepareTrainingData>;
  model: LayersModel;
  champion: LoadedModel | null;
  gridStartMs: number;
}): Promise<Evaluation | null> {
  const { tf, forecast, data, model } = input;
  const { horizon, steps } = forecast;
  const y = matrixColumn(data.matrix, data.rows, data.features, TARGET_FEATURE);
  const season = resolveSeason(forecast.evaluation.seasonLength, forecast.interval, y.subarray(0, data.splitRow));
  const { origins, season: seasonUsed } = commonOrigins(y, data.validation.originRows, horizon, season.length);
  if (origins.length === 0) return null;
  const heldOut = origins.length === data.validation.count ? data.validation : windowsAtOrigins(data.validation, origins);

  const predictions: Partial<Record<Method, Float64Array>> = { model: predictOriginal(tf, model, heldOut, data.scaler) };
  if (input.champion) {
    const championPredictions = await predictWithCheckpoint(tf, input.champion, data, origins);
    if (championPredictions) predictions.champion = championPredictions;
  }
  const linear = fitLinear(y, data.train.originRows, {
    steps,
    horizon,
    ridge: forecast.evaluation.linearRidge,
    scale: data.scaler.std[TARGET_FEATURE],
  });
  Object.assign(predictions, baselinePredictions(y, origins, horizon, { season: seasonUsed, linear }));
  const maseScale = maseScaleFor(y, data.splitRow, seasonUsed ?? season.length);
  const methods = scoreMethods({
    actual: actualsAt(y, origins, horizon),
    horizon,
    predictions,
    levels: forecast.evaluation.intervals,
    maseScale: maseScale?.mae ?? null,
    targetStd: data.scaler.std[TARGET_FEATURE],
  });
  const intervalMs = forecast.interval * 1000;
  return {
    windows: origins.length,
    fromMs: input.gridStartMs + origins[0] * intervalMs,
    toMs: input.gridStartMs + origins[origins.length - 1] * intervalMs,
    horizon,
    levels: [...forecast.evaluation.intervals],
    season: seasonUsed === season.length ? season : { length: null, source: 'none' },
    maseScale,
    targetStd: data.scaler.std[TARGET_FEATURE],
    methods,
    linear,
    championVersion: input.champion?.meta.version ?? null,
  };
}

/** A checkpointed model's forecasts at `origins`, its inputs scaled with its own scaler. Null when its windows differ. */
async function predictWithCheckpoint(
  tf: Tf,
  loaded: LoadedModel,
  data: ReturnType<typeof prepareTrainingData>,
  origins: Int32Array,
): Promise<Float64Array | null> {
  const { meta } = loaded;
  if (meta.scaler.mean.length !== data.features) return null;
  const scaled = scaleMatrix(data.matrix, data.rows, data.features, meta.scaler);
  const windows = cutWindows(scaled, data.rows, data.features, {
    steps: meta.steps,
    horizon: meta.horizon,
    targetFeature: TARGET_FEATURE,
    relativeToLast: meta.relativeToLast,
    firstOrigin: origins[0],
    lastOrigin: origins[origins.length - 1],
  });
  const selected = windowsAtOrigins(windows, origins);
  if (selected.count !== origins.length) return null;
  const model = await modelFromContent(tf, loaded.content);
  try {
    return predictOriginal(tf, model, selected, meta.scaler);
  } finally {
    model.dispose();
  }
}
