/**
 * Keras's `model.fit` on a tfjs LayersModel: epochs, initialEpoch, batchSize, validationSplit (the last
 * samples, taken before shuffling) or validationData, shuffling inside the training part only with a
 * seeded permutation, verbose 0 / 1 / 2, and callbacks in Keras's order: the progress bar, then the
 * given callbacks in list order, then History.
 *
 * tfjs runs one epoch per call (its own shuffle uses Math.random, and its epoch-end callbacks cannot
 * await a checkpoint save before the next epoch starts); batch events are forwarded from inside it.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import { History, type Callback, type FitContext, type Logs } from './callbacks.js';
import { progressCallback, type Verbosity } from './progress.js';
import { gatherRows, permutation, seededRandom } from './random.js';

/** Samples as flat typed arrays: x is [count, ...sampleShape], y is [count, targetSize]. */
export interface ArrayDataset {
  count: number;
  x: Float32Array;
  sampleShape: number[];
  y: Float32Array;
  targetSize: number;
}

export interface FitOptions {
  epochs: number;
  initialEpoch?: number;
  batchSize?: number;
  validationData?: ArrayDataset;
  /** Fraction of the samples, taken from the end before any shuffling, held out for validation. */
  validationSplit?: number;
  shuffle?: boolean;
  /** Seed of the per-epoch shuffle; a random one when absent. */
  seed?: number;
  verbose?: Verbosity;
  write?: (text: string) => void;
  callbacks?: Callback[];
  /** Aborts between batches; the interrupted epoch gets no epoch-end callbacks (it did not complete). */
  signal?: AbortSignal;
}

export interface FitResult {
  history: History;
  /** Epochs that completed in this call. */
  epochsRun: number;
  /** The next epoch to run (Keras's `initialEpoch` of a continuation). */
  nextEpoch: number;
  /** A callback ended training before the epoch budget. */
  stoppedEarly: boolean;
  aborted: boolean;
}

const sampleSize = (dataset: ArrayDataset) => dataset.sampleShape.reduce((product, size) => product * size, 1);

function sliceDataset(dataset: ArrayDataset, from: number, to: number): ArrayDataset {
  const size = sampleSize(dataset);
  return {
    count: to - from,
    x: dataset.x.slice(from * size, to * size),
    sampleShape: dataset.sampleShape,
    y: dataset.y.slice(from * dataset.targetSize, to * dataset.targetSize),
    targetSize: dataset.targetSize,
  };
}

function toTensors(tf: Tf, dataset: ArrayDataset, order?: Uint32Array): { xs: Tensor; ys: Tensor } {
  const size = sampleSize(dataset);
  const x = order ? gatherRows(dataset.x, size, order) : dataset.x;
  const y = order ? gatherRows(dataset.y, dataset.targetSize, order) : dataset.y;
  return { xs: tf.tensor(x, [dataset.count, ...dataset.sampleShape]), ys: tf.tensor2d(y, [dataset.count, dataset.targetSize]) };
}

/** Trains a compiled model. Tensors it creates are disposed before it returns, also on error. */
export async function fit(tf: Tf, model: LayersModel, data: ArrayDataset, options: FitOptions): Promise<FitResult> {
  const { epochs } = options;
  const initialEpoch = options.initialEpoch ?? 0;
  const batchSize = options.batchSize ?? 32;
  let train = data;
  let validation = options.validationData;
  if (!validation && options.validationSplit) {
    const split = Math.floor(data.count * (1 - options.validationSplit));
    train = sliceDataset(data, 0, split);
    validation = sliceDataset(data, split, data.count);
  }
  if (train.count === 0) throw new RangeError('fit: no training samples');

  const history = new History();
  const progress: Callback[] = options.verbose
    ? [
        progressCallback(options.verbose, {
          epochs,
          batchesPerEpoch: Math.ceil(train.count / batchSize),
          write: options.write ?? ((text) => process.stdout.write(text)),
        }),
      ]
    : [];
  const callbacks: Callback[] = [...progress, ...(options.callbacks ?? []), history];
  const context: FitContext = { tf, model, epochs, stopTraining: false };
  for (const callback of callbacks) callback.setContext?.(context);

  const random = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  const validationTensors = validation && validation.count > 0 ? toTensors(tf, validation) : null;
  let abortedMidEpoch = false;
  let aborted = false;
  let epochsRun = 0;
  let epoch = initialEpoch;
  const bridge = {
    onBatchBegin: async (batch: number, logs?: Logs) => {
      for (const callback of callbacks) await callback.onBatchBegin?.(batch, logs);
    },
    onBatchEnd: async (batch: number, logs?: Logs) => {
      for (const callback of callbacks) await callback.onBatchEnd?.(batch, logs);
      if (options.signal?.aborted) {
        abortedMidEpoch = true;
        model.stopTraining = true;
      }
    },
  };
  try {
    for (const callback of callbacks) await callback.onTrainBegin?.({});
    for (; epoch < epochs; epoch++) {
      if (options.signal?.aborted) {
        aborted = true;
        break;
      }
      for (const callback of callbacks) await callback.onEpochBegin?.(epoch, {});
      const order = options.shuffle === false ? undefined : permutation(train.count, random);
      const { xs, ys } = toTensors(tf, train, order);
      let logs: Logs;
      try {
        const result = await model.fit(xs, ys, {
          initialEpoch: epoch,
          epochs: epoch + 1,
          batchSize,
          shuffle: false,
          verbose: 0,
          validationData: validationTensors ? [validationTensors.xs, validationTensors.ys] : undefined,
          callbacks: bridge,
        });
        logs = Object.fromEntries(Object.entries(result.history).map(([key, values]) => [key, Number(values[values.length - 1])]));
      } finally {
        xs.dispose();
        ys.dispose();
      }
      if (abortedMidEpoch) {
        aborted = true;
        break;
      }
      for (const callback of callbacks) await callback.onEpochEnd?.(epoch, logs);
      epochsRun++;
      if (context.stopTraining) {
        epoch++;
        break;
      }
    }
    if (!aborted) for (const callback of callbacks) await callback.onTrainEnd?.({});
  } finally {
    validationTensors?.xs.dispose();
    validationTensors?.ys.dispose();
  }
  return { history, epochsRun, nextEpoch: epoch, stoppedEarly: context.stopTraining && epoch < epochs, aborted };
}
