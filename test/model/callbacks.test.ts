import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../src/model/backend.js';
import {
  EarlyStopping,
  getLearningRate,
  LearningRateScheduler,
  ModelCheckpoint,
  ReduceLROnPlateau,
  snapshotWeights,
  type Callback,
  type FitContext,
  type Logs,
} from '../../src/model/callbacks.js';
import { CheckpointStore } from '../../src/model/checkpoint.js';
import { fit, type ArrayDataset } from '../../src/model/fit.js';
import { dense, lstm, sequential } from '../../src/model/sequential.js';
import { prng, removeTempDirs, tempDir } from './fixtures.js';

let tf: Tf;
before(async () => {
  ({ tf } = await initBackend('wasm', { allowNative: false }));
});
after(removeTempDirs);

/** A compiled LSTM(3) → Dense(2) on (4, 1) inputs. */
function tinyModel(seed = 1, learningRate = 0.01): LayersModel {
  const model = sequential([lstm(3, { inputShape: [4, 1] }), dense(2)]).build(tf, { seed });
  model.compile({ optimizer: tf.train.adam(learningRate), loss: 'meanSquaredError' });
  return model;
}

function dispose(model: LayersModel): void {
  model.optimizer.dispose();
  model.dispose();
}

/** `count` samples of a smooth mapping, or its negation (`flip`) for a validation set that training makes worse. */
function dataset(count: number, seed: number, flip = false): ArrayDataset {
  const random = prng(seed);
  const x = Float32Array.from({ length: count * 4 }, () => random() * 2 - 1);
  const y = new Float32Array(count * 2);
  for (let i = 0; i < count; i++) {
    const sum = x[i * 4] + x[i * 4 + 1] + x[i * 4 + 2] + x[i * 4 + 3];
    y[i * 2] = (flip ? -1 : 1) * sum;
    y[i * 2 + 1] = (flip ? -1 : 1) * x[i * 4 + 3];
  }
  return { count, x, sampleShape: [4, 1], y, targetSize: 2 };
}

/** Drives a callback through scripted epochs, as fit would, without training. */
function scripted(callback: Callback, model: LayersModel, epochs: number): FitContext {
  const context: FitContext = { tf, model, epochs, stopTraining: false };
  callback.setContext?.(context);
  return context;
}

function weightsEqual(a: Float32Array[], b: Float32Array[]): boolean {
  return a.length === b.length && a.every((values, index) => values.length === b[index].length && values.every((value, i) => value === b[index][i]));
}

describe('fit: callbacks run in Keras order', () => {
  it('progress bar first, then the callbacks in list order, then History; batch events inside epochs', async () => {
    const model = tinyModel();
    const events: string[] = [];
    const recorder = (name: string): Callback => ({
      onTrainBegin: () => void events.push(`${name}.trainBegin`),
      onEpochBegin: (epoch) => void events.push(`${name}.epochBegin:${epoch}`),
      onBatchBegin: (batch) => void events.push(`${name}.batchBegin:${batch}`),
      onBatchEnd: (batch) => void events.push(`${name}.batchEnd:${batch}`),
      onEpochEnd: (epoch, logs) =>
        void events.push(
          `${name}.epochEnd:${epoch}:${Object.keys(logs ?? {})
            .sort()
            .join('+')}`,
        ),
      onTrainEnd: () => void events.push(`${name}.trainEnd`),
    });
    try {
      const result = await fit(tf, model, dataset(20, 1), {
        epochs: 2,
        batchSize: 10,
        validationData: dataset(6, 2),
        seed: 3,
        verbose: 2,
        write: (text) => events.push(`write:${text.split(' - ')[0]}`),
        callbacks: [recorder('A'), recorder('B')],
      });
      const epoch = (e: number) => [
        `A.epochBegin:${e}`,
        `B.epochBegin:${e}`,
        'A.batchBegin:0',
        'B.batchBegin:0',
        'A.batchEnd:0',
        'B.batchEnd:0',
        'A.batchBegin:1',
        'B.batchBegin:1',
        'A.batchEnd:1',
        'B.batchEnd:1',
        // verbose 2 writes its line in onEpochEnd, before the callbacks after it.
        `write:Epoch ${e + 1}/2`,
        `A.epochEnd:${e}:loss+val_loss`,
        `B.epochEnd:${e}:loss+val_loss`,
      ];
      assert.deepEqual(events, ['A.trainBegin', 'B.trainBegin', ...epoch(0), ...epoch(1), 'A.trainEnd', 'B.trainEnd']);
      assert.deepEqual(result.history.epoch, [0, 1]);
      assert.equal(result.history.history.loss.length, 2);
      assert.equal(result.history.history.val_loss.length, 2);
      assert.equal(result.epochsRun, 2);
      assert.equal(result.stoppedEarly, false);
    } finally {
      dispose(model);
    }
  });

  it('validationSplit takes the last samples before shuffling, as Keras does', async () => {
    const model = tinyModel();
    const data = dataset(20, 4);
    let validationLoss = NaN;
    try {
      await fit(tf, model, data, {
        epochs: 1,
        batchSize: 8,
        validationSplit: 0.25,
        seed: 1,
        callbacks: [{ onEpochEnd: (_e, logs) => void (validationLoss = logs!.val_loss!) }],
      });
      // The same loss, computed by hand on samples 15..19.
      const expected = tf.tidy(() => {
        const xs = tf.tensor3d(data.x.slice(15 * 4), [5, 4, 1]);
        const ys = tf.tensor2d(data.y.slice(15 * 2), [5, 2]);
        return tf.losses.meanSquaredError<Tensor, Tensor>(ys, model.predict(xs) as Tensor).dataSync()[0];
      });
      assert.ok(Math.abs(validationLoss - expected) < 1e-5, `${validationLoss} vs ${expected}`);
    } finally {
      dispose(model);
    }
  });

  it('the same seed shuffles the same way: identical losses', async () => {
    const run = async () => {
      const model = tinyModel(5);
      try {
        return (await fit(tf, model, dataset(40, 6), { epochs: 2, batchSize: 8, seed: 9 })).history.history.loss;
      } finally {
        dispose(model);
      }
    };
    assert.deepEqual(await run(), await run());
  });

  it('leaves no tensors behind', async () => {
    const model = tinyModel();
    try {
      await fit(tf, model, dataset(20, 1), { epochs: 1, batchSize: 10, validationData: dataset(5, 2) });
      const before = tf.memory().numTensors;
      await fit(tf, model, dataset(20, 1), {
        epochs: 3,
        batchSize: 10,
        validationData: dataset(5, 2),
        callbacks: [new EarlyStopping({ patience: 1, restoreBestWeights: true }), new ReduceLROnPlateau({ patience: 1 })],
      });
      assert.equal(tf.memory().numTensors, before);
    } finally {
      dispose(model);
    }
  });
});

describe('EarlyStopping', () => {
  it("stops after `patience` epochs without improvement and restores the best epoch's weights (scripted val_loss)", () => {
    const model = tinyModel();
    try {
      const stopping = new EarlyStopping({ patience: 2, restoreBestWeights: true });
      const context = scripted(stopping, model, 10);
      stopping.onTrainBegin();
      const snapshots: Float32Array[][] = [];
      const losses = [1.0, 0.8, 0.9, 0.85, 0.7];
      for (const [epoch, loss] of losses.entries()) {
        // Give every epoch distinct weights, as training would.
        model.setWeights(model.getWeights().map((weight) => tf.tidy(() => weight.add(0.01 * (epoch + 1)))));
        snapshots.push(snapshotWeights(model).values);
        stopping.onEpochEnd(epoch, { val_loss: loss });
        if (context.stopTraining) break;
      }
      assert.equal(context.stopTraining, true);
      assert.equal(stopping.stoppedEpoch, 3, 'epochs 2 and 3 did not improve on epoch 1');
      assert.equal(stopping.bestEpoch, 1);
      assert.equal(stopping.best, 0.8);
      stopping.onTrainEnd();
      assert.ok(weightsEqual(snapshotWeights(model).values, snapshots[1]), 'the weights of epoch 1 (the best) are back');
    } finally {
      dispose(model);
    }
  });

  it('minDelta: a smaller decrease is no improvement; a missing monitor never stops', () => {
    const model = tinyModel();
    try {
      const stopping = new EarlyStopping({ patience: 1, minDelta: 0.1 });
      const context = scripted(stopping, model, 10);
      stopping.onTrainBegin();
      stopping.onEpochEnd(0, { val_loss: 1 });
      stopping.onEpochEnd(1, { val_loss: 0.95 });
      assert.equal(context.stopTraining, true);
      const blind = new EarlyStopping({ patience: 0 });
      const other = scripted(blind, model, 10);
      blind.onTrainBegin();
      for (let epoch = 0; epoch < 5; epoch++) blind.onEpochEnd(epoch, { loss: 1 });
      assert.equal(other.stopTraining, false);
    } finally {
      dispose(model);
    }
  });

  it("through fit: a validation set that training makes worse stops early and ends with the first epoch's weights", async () => {
    const model = tinyModel(2, 0.05);
    const afterEpoch: Float32Array[][] = [];
    try {
      const result = await fit(tf, model, dataset(64, 7), {
        epochs: 20,
        batchSize: 16,
        validationData: dataset(16, 8, true),
        seed: 1,
        callbacks: [
          new EarlyStopping({ patience: 2, restoreBestWeights: true }),
          { onEpochEnd: () => void afterEpoch.push(snapshotWeights(model).values) },
        ],
      });
      const valLoss = result.history.history.val_loss;
      const best = valLoss.indexOf(Math.min(...valLoss));
      assert.equal(result.stoppedEarly, true, `val_loss ${valLoss.join(', ')}`);
      assert.equal(result.epochsRun, best + 3, 'stopped `patience` epochs after the best');
      assert.ok(weightsEqual(snapshotWeights(model).values, afterEpoch[best]), `restored the weights of epoch ${best}`);
      assert.ok(!weightsEqual(afterEpoch.at(-1)!, afterEpoch[best]), 'the last epoch had other weights');
    } finally {
      dispose(model);
    }
  });
});

describe('ReduceLROnPlateau and LearningRateScheduler', () => {
  it('multiplies the rate by `factor` after `patience` stalled epochs, waits `cooldown`, never goes below minLr', () => {
    const model = tinyModel(1, 0.01);
    try {
      const plateau = new ReduceLROnPlateau({ factor: 0.5, patience: 2, cooldown: 1, minLr: 0.003 });
      scripted(plateau, model, 20);
      plateau.onTrainBegin();
      const rates: number[] = [];
      const script = [1, 1, 1, 1, 1, 1, 1, 1];
      script.forEach((loss, epoch) => {
        const logs: Logs = { val_loss: loss };
        plateau.onEpochEnd(epoch, logs);
        rates.push(logs.learning_rate!);
      });
      // logs.learning_rate is the rate the epoch ran with; the reduction applies from the next one.
      assert.deepEqual(rates, [0.01, 0.01, 0.01, 0.005, 0.005, 0.003, 0.003, 0.003]);
      // Epoch 3 only counts again after the cooldown; the third reduction would go below minLr.
      assert.deepEqual(plateau.reductions, [
        { epoch: 2, learningRate: 0.005 },
        { epoch: 4, learningRate: 0.003 },
      ]);
      assert.equal(getLearningRate(model), 0.003, 'the optimizer itself runs with the reduced rate');
    } finally {
      dispose(model);
    }
  });

  it('an improvement resets the count', () => {
    const model = tinyModel(1, 0.01);
    try {
      const plateau = new ReduceLROnPlateau({ factor: 0.1, patience: 2 });
      scripted(plateau, model, 20);
      plateau.onTrainBegin();
      [1, 1.1, 0.5, 0.6].forEach((loss, epoch) => plateau.onEpochEnd(epoch, { val_loss: loss }));
      assert.equal(getLearningRate(model), 0.01, 'epoch 2 improved: one stalled epoch since');
      plateau.onEpochEnd(4, { val_loss: 0.55 });
      assert.ok(Math.abs(getLearningRate(model) - 0.001) < 1e-12);
    } finally {
      dispose(model);
    }
  });

  it('LearningRateScheduler sets schedule(epoch, rate) at every epoch begin of a real fit', async () => {
    const model = tinyModel(1, 0.01);
    const seen: number[] = [];
    try {
      await fit(tf, model, dataset(16, 1), {
        epochs: 3,
        batchSize: 16,
        callbacks: [
          new LearningRateScheduler((epoch, rate) => (epoch === 0 ? rate : rate / 10)),
          { onEpochEnd: (_e, logs) => void seen.push(logs!.learning_rate!) },
        ],
      });
      assert.deepEqual(
        seen.map((rate) => Number(rate.toPrecision(6))),
        [0.01, 0.001, 0.0001],
      );
    } finally {
      dispose(model);
    }
  });
});

describe('ModelCheckpoint: the latest and the best by val_loss', () => {
  it('saves at every epoch end into `latest` and, when val_loss improves, into `best`; the last epoch is marked finished', async () => {
    const model = tinyModel(3, 0.05);
    const latest = new CheckpointStore(tempDir(), 'ckpt', { keep: 10 });
    const best = new CheckpointStore(tempDir(), 'ckpt-best', { keep: 10 });
    try {
      const result = await fit(tf, model, dataset(32, 2), {
        epochs: 4,
        batchSize: 16,
        validationData: dataset(16, 9, true),
        seed: 2,
        callbacks: [
          new ModelCheckpoint({ latest, best, meta: (epoch, logs, finished) => ({ epoch: epoch + 1, valLoss: logs.val_loss ?? null, finished }) }),
        ],
      });
      const valLoss = result.history.history.val_loss;
      const latestList = await latest.list();
      assert.deepEqual(
        latestList.map((info) => info.epoch),
        [4, 3, 2, 1],
      );
      assert.deepEqual(
        latestList.map((info) => info.meta.finished),
        [true, false, false, false],
      );
      const improving = valLoss.flatMap((loss, index) => (valLoss.slice(0, index).every((earlier) => loss < earlier) ? [index + 1] : []));
      assert.deepEqual((await best.list()).map((info) => info.epoch).reverse(), improving);
      const bestEpoch = valLoss.indexOf(Math.min(...valLoss)) + 1;
      assert.equal((await best.loadLatest())!.info.epoch, bestEpoch);
    } finally {
      dispose(model);
    }
  });
});
