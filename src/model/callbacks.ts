/**
 * Keras fit callbacks, with Keras's names, defaults and semantics (keras.callbacks in Keras 3):
 * EarlyStopping, ReduceLROnPlateau, LearningRateScheduler, ModelCheckpoint (latest + best) and History.
 *
 * They run in `fit()` (fit.ts) in list order, after the progress bar and before History, as Keras's
 * CallbackList orders them; a callback stops training by setting `context.stopTraining`, as a Keras
 * callback sets `self.model.stop_training`.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import type { CheckpointInfo, CheckpointStore } from './checkpoint.js';
import type { EpochLogs } from './progress.js';
import { modelToContent } from './serialize.js';

export type Logs = EpochLogs;

export interface FitContext {
  readonly tf: Tf;
  readonly model: LayersModel;
  /** Total epochs of this fit (Keras `epochs`). */
  readonly epochs: number;
  /** Set to end training after the current epoch (Keras `model.stop_training`). */
  stopTraining: boolean;
}

export interface Callback {
  setContext?(context: FitContext): void;
  onTrainBegin?(logs?: Logs): Promise<void> | void;
  onEpochBegin?(epoch: number, logs?: Logs): Promise<void> | void;
  onBatchBegin?(batch: number, logs?: Logs): Promise<void> | void;
  onBatchEnd?(batch: number, logs?: Logs): Promise<void> | void;
  onEpochEnd?(epoch: number, logs?: Logs): Promise<void> | void;
  onTrainEnd?(logs?: Logs): Promise<void> | void;
}

/** The optimizer's current learning rate (tfjs keeps it as a plain number it reads at every step). */
export function getLearningRate(model: LayersModel): number {
  return (model.optimizer as unknown as { learningRate: number }).learningRate;
}

export function setLearningRate(model: LayersModel, learningRate: number): void {
  (model.optimizer as unknown as { learningRate: number }).learningRate = learningRate;
}

/** The model's weights as plain arrays: a snapshot that holds no tensor. */
export interface WeightsSnapshot {
  values: Float32Array[];
  shapes: number[][];
}

export function snapshotWeights(model: LayersModel): WeightsSnapshot {
  // getWeights() returns the variables themselves: nothing to dispose.
  const weights = model.getWeights();
  return { values: weights.map((weight) => (weight.dataSync() as Float32Array).slice()), shapes: weights.map((weight) => weight.shape) };
}

export function restoreWeights(tf: Tf, model: LayersModel, snapshot: WeightsSnapshot): void {
  const tensors = snapshot.values.map((values, index) => tf.tensor(values, snapshot.shapes[index]));
  try {
    model.setWeights(tensors);
  } finally {
    for (const tensor of tensors) tensor.dispose();
  }
}

abstract class BaseCallback implements Callback {
  protected context!: FitContext;
  setContext(context: FitContext): void {
    this.context = context;
  }
}

/** Keras `min` mode: `current` improves on `reference` when it is lower by more than `minDelta`. */
const improves = (current: number, reference: number, minDelta: number) => current < reference - minDelta;

export interface EarlyStoppingOptions {
  monitor?: string;
  minDelta?: number;
  patience?: number;
  /** Stop only if the monitored value has not reached this either (Keras `baseline`). */
  baseline?: number;
  restoreBestWeights?: boolean;
  startFromEpoch?: number;
}

/**
 * Stops when `monitor` (default val_loss, mode min) has not improved for `patience` epochs. With
 * restoreBestWeights the model ends with the best epoch's weights (restored at train end, as Keras 3
 * does, whether or not training stopped early).
 */
export class EarlyStopping extends BaseCallback {
  readonly monitor: string;
  readonly minDelta: number;
  readonly patience: number;
  readonly baseline: number | undefined;
  readonly restoreBestWeights: boolean;
  readonly startFromEpoch: number;
  wait = 0;
  /** The epoch (0-based) at which training was stopped; 0 when it was not. */
  stoppedEpoch = 0;
  best = Infinity;
  bestEpoch = -1;
  private bestWeights: WeightsSnapshot | null = null;

  constructor(options: EarlyStoppingOptions = {}) {
    super();
    this.monitor = options.monitor ?? 'val_loss';
    this.minDelta = Math.abs(options.minDelta ?? 0);
    this.patience = options.patience ?? 0;
    this.baseline = options.baseline;
    this.restoreBestWeights = options.restoreBestWeights ?? false;
    this.startFromEpoch = options.startFromEpoch ?? 0;
  }

  onTrainBegin(): void {
    this.wait = 0;
    this.stoppedEpoch = 0;
    this.best = Infinity;
    this.bestEpoch = -1;
    this.bestWeights = null;
  }

  onEpochEnd(epoch: number, logs?: Logs): void {
    const current = logs?.[this.monitor];
    // Keras warns and carries on when the monitored value is missing (no validation data).
    if (current === undefined || !Number.isFinite(current) || epoch < this.startFromEpoch) return;
    if (this.restoreBestWeights && this.bestWeights === null) {
      this.bestWeights = snapshotWeights(this.context.model);
      this.bestEpoch = epoch;
    }
    this.wait++;
    if (improves(current, this.best, this.minDelta)) {
      this.best = current;
      this.bestEpoch = epoch;
      if (this.restoreBestWeights) this.bestWeights = snapshotWeights(this.context.model);
      if (this.baseline === undefined || improves(current, this.baseline, this.minDelta)) this.wait = 0;
      return;
    }
    if (this.wait >= this.patience && epoch > 0) {
      this.stoppedEpoch = epoch;
      this.context.stopTraining = true;
    }
  }

  onTrainEnd(): void {
    if (this.restoreBestWeights && this.bestWeights !== null) restoreWeights(this.context.tf, this.context.model, this.bestWeights);
    this.bestWeights = null;
  }
}

export interface ReduceLROnPlateauOptions {
  monitor?: string;
  factor?: number;
  patience?: number;
  minDelta?: number;
  cooldown?: number;
  minLr?: number;
}

/** Multiplies the learning rate by `factor` when `monitor` has not improved for `patience` epochs (Keras defaults). */
export class ReduceLROnPlateau extends BaseCallback {
  readonly monitor: string;
  readonly factor: number;
  readonly patience: number;
  readonly minDelta: number;
  readonly cooldown: number;
  readonly minLr: number;
  wait = 0;
  cooldownCounter = 0;
  best = Infinity;
  /** (epoch, new rate) for every reduction, for logs and tests. */
  readonly reductions: Array<{ epoch: number; learningRate: number }> = [];

  constructor(options: ReduceLROnPlateauOptions = {}) {
    super();
    this.monitor = options.monitor ?? 'val_loss';
    this.factor = options.factor ?? 0.1;
    if (!(this.factor < 1)) throw new RangeError('ReduceLROnPlateau does not support a factor >= 1');
    this.patience = options.patience ?? 10;
    this.minDelta = options.minDelta ?? 1e-4;
    this.cooldown = options.cooldown ?? 0;
    this.minLr = options.minLr ?? 0;
  }

  onTrainBegin(): void {
    this.wait = 0;
    this.cooldownCounter = 0;
    this.best = Infinity;
  }

  onEpochEnd(epoch: number, logs?: Logs): void {
    if (logs) logs.learning_rate = getLearningRate(this.context.model);
    const current = logs?.[this.monitor];
    if (current === undefined || !Number.isFinite(current)) return;
    if (this.cooldownCounter > 0) {
      this.cooldownCounter--;
      this.wait = 0;
    }
    if (improves(current, this.best, this.minDelta)) {
      this.best = current;
      this.wait = 0;
    } else if (this.cooldownCounter === 0) {
      this.wait++;
      if (this.wait >= this.patience) {
        const old = getLearningRate(this.context.model);
        if (old > Math.fround(this.minLr)) {
          const next = Math.max(old * this.factor, this.minLr);
          setLearningRate(this.context.model, next);
          this.reductions.push({ epoch, learningRate: next });
          this.cooldownCounter = this.cooldown;
          this.wait = 0;
        }
      }
    }
  }
}

/** Sets the learning rate at each epoch begin to schedule(epoch, current rate) (Keras LearningRateScheduler). */
export class LearningRateScheduler extends BaseCallback {
  constructor(private readonly schedule: (epoch: number, learningRate: number) => number) {
    super();
  }

  onEpochBegin(epoch: number): void {
    const next = this.schedule(epoch, getLearningRate(this.context.model));
    if (!(Number.isFinite(next) && next > 0)) throw new RangeError(`LearningRateScheduler: schedule returned ${next} for epoch ${epoch}`);
    setLearningRate(this.context.model, next);
  }

  onEpochEnd(_epoch: number, logs?: Logs): void {
    if (logs) logs.learning_rate = getLearningRate(this.context.model);
  }
}

export interface ModelCheckpointOptions {
  /** Receives a checkpoint at every epoch end (the latest). */
  latest: CheckpointStore;
  /** Receives a checkpoint whenever `monitor` improves (the best so far). */
  best?: CheckpointStore;
  monitor?: string;
  /**
   * Metadata stored with each checkpoint. `finished` is true for the last epoch of a fit that was not
   * interrupted (the epoch budget is spent or a callback before this one stopped training).
   */
  meta: (epoch: number, logs: Logs, finished: boolean) => Record<string, unknown>;
  /** Called after each save (epochs count on across a resumed training, as `initialEpoch` does). */
  onSaved?: (info: { latest: CheckpointInfo; best: CheckpointInfo | null; epoch: number }) => void;
}

/**
 * Checkpoint at every epoch end, keeping the latest and the best by `monitor` (default val_loss) in two
 * stores; each store keeps its own fallback copies. Place it after EarlyStopping, so that it knows
 * whether the epoch it saves is the last one.
 */
export class ModelCheckpoint extends BaseCallback {
  readonly monitor: string;
  best = Infinity;
  bestEpoch = -1;
  lastSaved: CheckpointInfo | null = null;

  constructor(private readonly options: ModelCheckpointOptions) {
    super();
    this.monitor = options.monitor ?? 'val_loss';
  }

  async onEpochEnd(epoch: number, logs: Logs = {}): Promise<void> {
    const finished = this.context.stopTraining || epoch + 1 >= this.context.epochs;
    const content = await modelToContent(this.context.tf, this.context.model, this.options.meta(epoch, logs, finished));
    const latest = await this.options.latest.save(content, epoch + 1);
    this.lastSaved = latest;
    let best: CheckpointInfo | null = null;
    const current = logs[this.monitor];
    const improved = current === undefined ? false : current < this.best;
    if (improved) {
      this.best = current!;
      this.bestEpoch = epoch;
      if (this.options.best) best = await this.options.best.save(content, epoch + 1);
    }
    this.options.onSaved?.({ latest, best, epoch });
  }
}

/** Every epoch's logs, as Keras's History callback keeps them (the last callback of every fit). */
export class History extends BaseCallback {
  readonly epoch: number[] = [];
  readonly history: Record<string, number[]> = {};

  onEpochEnd(epoch: number, logs: Logs = {}): void {
    this.epoch.push(epoch);
    for (const [key, value] of Object.entries(logs)) {
      if (typeof value !== 'number') continue;
      (this.history[key] ??= []).push(value);
    }
  }
}

/**
 * Keras's EarlyStopping and ReduceLROnPlateau as a forecast's `training` config asks for them; both need a validation
 * part. One place, so that a backtest fits exactly as a training does.
 */
export function trainingCallbacks(
  training: {
    earlyStopping: { enabled: boolean; patience: number; minDelta: number; restoreBestWeights: boolean };
    reduceLrOnPlateau: { enabled: boolean; factor: number; patience: number; minDelta: number; cooldown: number; minLr: number };
  },
  hasValidation: boolean,
): { earlyStopping: EarlyStopping | null; reduceLr: ReduceLROnPlateau | null } {
  const { earlyStopping: stopping, reduceLrOnPlateau: plateau } = training;
  return {
    earlyStopping:
      stopping.enabled && hasValidation
        ? new EarlyStopping({ patience: stopping.patience, minDelta: stopping.minDelta, restoreBestWeights: stopping.restoreBestWeights })
        : null,
    reduceLr:
      plateau.enabled && hasValidation
        ? new ReduceLROnPlateau({
            factor: plateau.factor,
            patience: plateau.patience,
            minDelta: plateau.minDelta,
            cooldown: plateau.cooldown,
            minLr: plateau.minLr,
          })
        : null,
  };
}
