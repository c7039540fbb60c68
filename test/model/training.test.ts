import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { initBackend, type BackendName, type Tf } from '../../src/model/backend.js';
import { CheckpointStore } from '../../src/model/checkpoint.js';
import { Forecaster } from '../../src/model/forecaster.js';
import { modelFromContent } from '../../src/model/serialize.js';
import { forecastCheckpoints } from '../../src/model/stores.js';
import {
  MIN_TRAIN_WINDOWS,
  NotEnoughHistoryError,
  shapeKeyFor,
  trainForecastModel,
  type EpochProgress,
  type ModelMeta,
  type TrainingSummary,
} from '../../src/model/training.js';
import { forecastConfig, HOUR_MS, NOW_MS, ORIGIN_MS, removeTempDirs, sineSeries, tempDir } from './fixtures.js';

let tf: Tf;
let backend: BackendName;
before(async () => {
  ({ tf, name: backend } = await initBackend('wasm', { allowNative: false }));
});
after(removeTempDirs);

/** A small, quick model for the tests that are about the training loop rather than what it learns. */
function tinyForecast(training: Record<string, unknown> = {}, fields: Record<string, unknown> = {}) {
  return forecastConfig({
    steps: 8,
    horizon: 3,
    layers: [{ type: 'lstm', units: 4 }, { type: 'dense' }],
    training: { epochs: 3, batchSize: 64, seed: 3, ...training },
    ...fields,
  });
}

describe('trainForecastModel on a periodic series (sine, period 24 steps, 1 h interval, small noise)', () => {
  const EPOCHS = 20;
  const forecast = forecastConfig({
    steps: 12,
    horizon: 6,
    layers: [{ type: 'lstm', units: 16 }, { type: 'dense' }],
    // Without early stopping, so that every epoch runs and is checkpointed.
    training: { epochs: EPOCHS, batchSize: 32, learningRate: 0.01, seed: 7, validationSplit: 0.2, earlyStopping: { enabled: false } },
  });
  const series = sineSeries({ points: 600, noise: 0.5, seed: 42 });
  const progress: EpochProgress[] = [];
  let store: CheckpointStore;
  let summary: TrainingSummary;

  before(async () => {
    store = new CheckpointStore(tempDir(), forecast.name, { keep: EPOCHS + 5 });
    summary = await trainForecastModel({
      tf,
      backend,
      forecast,
      series: [series],
      nowMs: NOW_MS,
      checkpoints: store,
      onEpoch: (event) => progress.push(event),
    });
  });

  it('writes a checkpoint at every epoch end, the last one current', async () => {
    const checkpoints = await store.list();
    assert.equal(checkpoints.length, EPOCHS);
    assert.deepEqual(
      checkpoints.map((info) => info.epoch).sort((a, b) => a - b),
      Array.from({ length: EPOCHS }, (_, i) => i + 1),
    );
    for (const info of checkpoints) {
      const meta = info.meta as unknown as ModelMeta;
      assert.equal(meta.epoch, info.epoch);
      assert.equal(meta.shapeKey, shapeKeyFor(forecast));
      assert.equal(meta.version, summary.version);
    }
    assert.equal(checkpoints[0].epoch, EPOCHS, 'newest first');
    assert.equal(summary.checkpointId, checkpoints[0].id);
    const latest = await store.loadLatest();
    assert.equal(latest?.info.id, summary.checkpointId);
    assert.deepEqual(latest?.rejected, []);
  });

  it('calls onEpoch once per epoch, in order, with losses and an ETA that reaches 0', () => {
    assert.equal(progress.length, EPOCHS);
    progress.forEach((event, index) => {
      assert.equal(event.forecast, forecast.name);
      assert.equal(event.epoch, index + 1);
      assert.equal(event.epochs, EPOCHS);
      assert.ok(Number.isFinite(event.loss) && event.loss! > 0, `loss ${event.loss}`);
      assert.ok(Number.isFinite(event.valLoss) && event.valLoss! > 0, `valLoss ${event.valLoss}`);
      assert.ok(Number.isFinite(event.etaMs) && event.etaMs >= 0, `etaMs ${event.etaMs}`);
      if (index > 0) assert.ok(event.elapsedMs >= progress[index - 1].elapsedMs, 'elapsed time never goes back');
    });
    assert.ok(progress[0].etaMs > 0, 'an ETA while epochs remain');
    assert.equal(progress.at(-1)!.etaMs, 0);
    // After the first epoch the ETA is about (epochs - 1) epoch durations.
    assert.ok(progress[0].etaMs > (EPOCHS - 2) * (progress[0].elapsedMs / 2), `eta ${progress[0].etaMs} vs first epoch ${progress[0].elapsedMs} ms`);
    assert.deepEqual(
      progress.map((event) => event.loss),
      summary.loss,
    );
  });

  it('summarises the run: losses per epoch, windows, data range', () => {
    assert.equal(summary.forecast, forecast.name);
    assert.equal(summary.backend, backend);
    assert.equal(summary.epochsCompleted, EPOCHS);
    assert.equal(summary.loss.length, EPOCHS);
    assert.equal(summary.valLoss.length, EPOCHS);
    for (const value of [...summary.loss, ...summary.valLoss]) assert.ok(Number.isFinite(value) && value > 0);
    assert.ok(summary.loss.at(-1)! < summary.loss[0] / 2, `the loss falls: ${summary.loss.join(', ')}`);
    assert.ok(summary.trainWindows >= MIN_TRAIN_WINDOWS);
    assert.ok(summary.validationWindows > 0);
    assert.ok(summary.samplesPerSecond > 0);
    assert.equal(summary.dataRange.toMs, ORIGIN_MS, 'the grid ends at the last closed bucket');
    assert.equal(summary.dataRange.fromMs, ORIGIN_MS - 600 * HOUR_MS, "the grid starts at the first reading's bucket");
  });

  it('validation metrics: the model beats persistence on a periodic signal', () => {
    assert.ok(summary.metrics, 'metrics are computed when there are validation windows');
    const { model, persistence } = summary.metrics;
    assert.equal(model.maeByStep.length, forecast.horizon);
    assert.equal(persistence.maeByStep.length, forecast.horizon);
    assert.ok(model.rmse >= model.mae && persistence.rmse >= persistence.mae);
    // Persistence of a 5-amplitude sine 1-6 h ahead is off by about 1-4.6; it grows with lead time.
    assert.ok(persistence.maeByStep.at(-1)! > persistence.maeByStep[0]);
    assert.ok(persistence.mae > 1, `persistence MAE ${persistence.mae}`);
    assert.ok(model.mae < persistence.mae, `model MAE ${model.mae} vs persistence ${persistence.mae}`);
    assert.ok(model.mae < persistence.mae / 2, `model MAE ${model.mae} should be well below persistence ${persistence.mae}`);
  });
});

describe('trainForecastModel: not enough history', () => {
  it('throws NotEnoughHistoryError saying how much is needed, and writes no checkpoint', async () => {
    const forecast = tinyForecast();
    const store = new CheckpointStore(tempDir(), forecast.name);
    await assert.rejects(
      trainForecastModel({ tf, backend, forecast, series: [sineSeries({ points: 30 })], nowMs: NOW_MS, checkpoints: store }),
      (error: unknown) => {
        assert.ok(error instanceof NotEnoughHistoryError, String(error));
        assert.equal(error.name, 'NotEnoughHistoryError');
        assert.equal(error.needWindows, MIN_TRAIN_WINDOWS);
        assert.ok(error.haveWindows < MIN_TRAIN_WINDOWS);
        assert.ok(error.neededSpanMs > 30 * HOUR_MS);
        assert.match(error.message, new RegExp(`"${forecast.name}" has ${error.haveWindows} training windows, needs at least ${MIN_TRAIN_WINDOWS}`));
        assert.match(error.message, /about \d+ h of history/);
        // Warming up says how much more and when: 54 rows are needed, 30 are there.
        assert.deepEqual(error.warmUp, { missingMs: 24 * HOUR_MS, readyAtMs: ORIGIN_MS + 24 * HOUR_MS });
        assert.match(error.message, new RegExp(`about 24 h more, ready around ${new Date(ORIGIN_MS + 24 * HOUR_MS).toISOString()}`));
        return true;
      },
    );
    assert.deepEqual(await store.list(), []);
  });

  it('with no readings at all', async () => {
    const forecast = tinyForecast();
    const store = new CheckpointStore(tempDir(), forecast.name);
    const empty = { name: 'site.temp', timestampsMs: new Float64Array(0), values: new Float64Array(0) };
    await assert.rejects(trainForecastModel({ tf, backend, forecast, series: [empty], nowMs: NOW_MS, checkpoints: store }), NotEnoughHistoryError);
  });

  it('the amount of history the message asks for is enough', async () => {
    const forecast = tinyForecast({ epochs: 1 });
    const store = new CheckpointStore(tempDir(), forecast.name);
    let hours = 0;
    await assert.rejects(
      trainForecastModel({ tf, backend, forecast, series: [sineSeries({ points: 40 })], nowMs: NOW_MS, checkpoints: store }),
      (error: unknown) => {
        assert.ok(error instanceof NotEnoughHistoryError);
        hours = Number(/about (\d+) h/.exec(error.message)![1]);
        return true;
      },
    );
    assert.ok(hours > 40);
    const summary = await trainForecastModel({ tf, backend, forecast, series: [sineSeries({ points: hours })], nowMs: NOW_MS, checkpoints: store });
    assert.ok(summary.trainWindows >= MIN_TRAIN_WINDOWS, `${hours} h gave ${summary.trainWindows} windows`);
  });
});

describe('trainForecastModel: an AbortSignal', () => {
  it("aborted after the first epoch stops training early and leaves that epoch's checkpoint loadable", async () => {
    const forecast = tinyForecast({ epochs: 6 });
    const store = new CheckpointStore(tempDir(), forecast.name, { keep: 10 });
    const controller = new AbortController();
    const epochsSeen: number[] = [];
    const series = [sineSeries({ points: 200 })];
    const summary = await trainForecastModel({
      tf,
      backend,
      forecast,
      series,
      nowMs: NOW_MS,
      checkpoints: store,
      signal: controller.signal,
      onEpoch: (event) => {
        epochsSeen.push(event.epoch);
        if (event.epoch === 1) controller.abort();
      },
    });
    assert.deepEqual(epochsSeen, [1]);
    assert.equal(summary.epochsCompleted, 1);
    assert.equal(summary.loss.length, 1);
    const checkpoints = await store.list();
    assert.equal(checkpoints.length, 1);
    assert.equal(checkpoints[0].epoch, 1);
    assert.equal(summary.checkpointId, checkpoints[0].id);

    const latest = await store.loadLatest();
    assert.ok(latest);
    assert.equal(latest.info.epoch, 1);
    const model = await modelFromContent(tf, latest.content);
    try {
      assert.deepEqual(model.outputs[0].shape, [null, forecast.horizon]);
    } finally {
      model.dispose();
    }
    const { forecaster, rejected } = await Forecaster.load(tf, store, shapeKeyFor(forecast));
    assert.deepEqual(rejected, []);
    assert.ok(forecaster);
    try {
      assert.equal(forecaster.predict(series, NOW_MS)?.points.length, forecast.horizon);
    } finally {
      forecaster.dispose();
    }
  });

  it('aborted in the middle of an epoch keeps the last completed epoch as the newest checkpoint', async () => {
    // 150 training windows in batches of 16 (10 per epoch); the verbose-1 bar writes once per batch, so the abort lands after batch 1 of epoch 2.
    const forecast = tinyForecast({ epochs: 4, batchSize: 16 });
    const store = new CheckpointStore(tempDir(), forecast.name, { keep: 10 });
    const controller = new AbortController();
    let epochBegun = 0;
    const summary = await trainForecastModel({
      tf,
      backend,
      forecast,
      series: [sineSeries({ points: 200 })],
      nowMs: NOW_MS,
      checkpoints: store,
      signal: controller.signal,
      verbose: 1,
      write: (text) => {
        if (text.startsWith('Epoch ')) epochBegun++;
        else if (epochBegun === 2 && text.startsWith('\r1/')) controller.abort();
      },
    });
    assert.equal(epochBegun, 2, 'training stopped in epoch 2');
    const checkpoints = await store.list();
    assert.deepEqual(
      checkpoints.map((info) => info.epoch),
      [1],
      'a partly trained epoch 2 must not be checkpointed (and published) as if it had completed',
    );
    assert.equal(summary.epochsCompleted, 1);
    assert.equal(summary.loss.length, 1);
  });
});

describe('trainForecastModel: reproducibility', () => {
  it('the same training.seed gives the same losses (the schema promises seeded initialisation and shuffling)', async () => {
    const forecast = tinyForecast({ epochs: 2, batchSize: 16, seed: 21 });
    const series = [sineSeries({ points: 200, noise: 1, seed: 5 })];
    const run = async () =>
      (await trainForecastModel({ tf, backend, forecast, series, nowMs: NOW_MS, checkpoints: new CheckpointStore(tempDir(), forecast.name) })).loss;
    const first = await run();
    const second = await run();
    assert.deepEqual(second, first);
  });
});

describe('trainForecastModel: an interrupted training resumes from its last epoch checkpoint', () => {
  const forecast = tinyForecast({ epochs: 5, earlyStopping: { enabled: false }, reduceLrOnPlateau: { enabled: false } });
  const series = (hoursLater: number) => [sineSeries({ points: 200 + hoursLater, endMs: ORIGIN_MS + hoursLater * HOUR_MS, noise: 0.2 })];

  it('resumes the weights, the epoch count, the version and the scaler; a finished run is not resumed', async () => {
    const latest = new CheckpointStore(tempDir(), 'run', { keep: 10 });
    const controller = new AbortController();
    const first = await trainForecastModel({
      tf,
      backend,
      forecast,
      series: series(0),
      nowMs: NOW_MS,
      checkpoints: latest,
      signal: controller.signal,
      onEpoch: (event) => {
        if (event.epoch === 2) controller.abort();
      },
    });
    assert.equal(first.status, 'aborted');
    assert.equal(first.epochsCompleted, 2);
    assert.equal(first.evaluation, null, 'an interrupted run is not evaluated (nor promoted)');
    const interrupted = (await latest.loadLatest())!;
    const meta = interrupted.content.meta as unknown as ModelMeta;
    assert.equal(meta.epoch, 2);
    assert.deepEqual(meta.run, { finished: false, totalEpochs: 5, learningRate: forecast.training.learningRate });

    // The next run (an hour later, with an hour more of data) continues it.
    const epochsSeen: number[] = [];
    const second = await trainForecastModel({
      tf,
      backend,
      forecast,
      series: series(1),
      nowMs: NOW_MS + HOUR_MS,
      checkpoints: latest,
      onEpoch: (event) => epochsSeen.push(event.epoch),
    });
    assert.equal(second.status, 'finished');
    assert.equal(second.initialEpoch, 2);
    assert.deepEqual(epochsSeen, [3, 4, 5]);
    assert.equal(second.epochsCompleted, 3);
    assert.deepEqual(second.resumedFrom, { version: first.version, epoch: 2, checkpoint: interrupted.info.id });
    assert.equal(second.version, first.version, 'the same run, continued');
    assert.deepEqual(second.scaler, meta.scaler, 'the resumed weights see their inputs scaled as before');
    assert.ok(second.loss[0] < first.loss[0], `resumed from trained weights: epoch 3 loss ${second.loss[0]} < epoch 1 loss ${first.loss[0]}`);
    const done = (await latest.loadLatest())!;
    assert.equal(done.info.epoch, 5);
    assert.equal((done.content.meta as unknown as ModelMeta).run?.finished, true);

    const third = await trainForecastModel({ tf, backend, forecast, series: series(2), nowMs: NOW_MS + 2 * HOUR_MS, checkpoints: latest });
    assert.equal(third.initialEpoch, 0);
    assert.equal(third.resumedFrom, null);
    assert.notEqual(third.version, first.version);
  });

  it('an interrupted run of another model shape is not resumed', async () => {
    const latest = new CheckpointStore(tempDir(), 'run', { keep: 10 });
    const controller = new AbortController();
    await trainForecastModel({
      tf,
      backend,
      forecast,
      series: series(0),
      nowMs: NOW_MS,
      checkpoints: latest,
      signal: controller.signal,
      onEpoch: () => controller.abort(),
    });
    const reshaped = tinyForecast({ epochs: 2 }, { steps: 10 });
    const summary = await trainForecastModel({ tf, backend, forecast: reshaped, series: series(0), nowMs: NOW_MS, checkpoints: latest });
    assert.equal(summary.initialEpoch, 0);
    assert.equal(summary.resumedFrom, null);
  });
});

describe('trainForecastModel: the serving model, warm start and champion / challenger', () => {
  const forecast = forecastConfig({
    steps: 12,
    horizon: 4,
    layers: [{ type: 'lstm', units: 8 }, { type: 'dense' }],
    training: { epochs: 8, batchSize: 32, learningRate: 0.01, seed: 11 },
  });
  const series = (hoursLater: number) => [sineSeries({ points: 240 + hoursLater, endMs: ORIGIN_MS + hoursLater * HOUR_MS, noise: 0.3, seed: 8 })];
  const stores = forecastCheckpoints(tempDir(), forecast);
  let champion: TrainingSummary;

  before(async () => {
    champion = await trainForecastModel({
      tf,
      backend,
      forecast,
      series: series(0),
      nowMs: NOW_MS,
      checkpoints: stores.latest,
      best: stores.best,
      serving: stores.serving,
    });
  });

  it('records the model and every baseline on the same held-out windows, in original units', () => {
    const evaluation = champion.evaluation!;
    assert.ok(evaluation);
    assert.deepEqual(Object.keys(evaluation.methods).sort(), ['linear', 'model', 'persistence', 'seasonal_naive']);
    for (const scores of Object.values(evaluation.methods)) {
      assert.equal(scores.windows, evaluation.windows, 'every method on the same windows');
      assert.equal(scores.maeByStep.length, forecast.horizon);
      assert.equal(scores.intervalWidths.length, 2, 'one row of widths per level (0.8, 0.95)');
      assert.ok(
        scores.intervalWidths[1].every((width, step) => width >= scores.intervalWidths[0][step]),
        'the 95 % interval is at least as wide as the 80 %',
      );
      assert.ok(scores.mase !== null && scores.mseScaled !== null);
    }
    assert.deepEqual(evaluation.season, { length: 24, source: 'detected', acf: evaluation.season.acf });
    assert.equal(evaluation.maseScale?.lag, 24);
    assert.equal(champion.metrics!.model.mae, evaluation.methods.model!.mae);
    assert.equal(champion.configHash?.length, 16);
    assert.deepEqual(champion.featureNames, ['site.temp']);
    assert.equal(champion.learningRate?.length, champion.epochsCompleted);
  });

  it('a first model that beats persistence is promoted into the serving store', async () => {
    const { decision } = champion;
    assert.ok(decision);
    assert.equal(decision.promoted, true, decision.reason);
    assert.equal(decision.servedBy, 'model');
    const serving = (await stores.serving.loadLatest())!;
    assert.equal(serving.info.id, champion.servingCheckpointId);
    assert.equal((serving.content.meta as unknown as ModelMeta).version, champion.version);
    // The best epoch by val_loss is in the best store, the last one in the latest store.
    assert.equal((await stores.best.loadLatest())!.info.epoch, champion.bestEpoch);
    assert.equal((await stores.latest.loadLatest())!.info.id, champion.checkpointId);
  });

  it('a challenger worse than the serving model does not replace it, and says why', async () => {
    const before = (await stores.serving.loadLatest())!.info.id;
    const weak = forecastConfig({ ...forecast, training: { ...forecast.training, epochs: 1, learningRate: 0.00001, warmStart: false, seed: 99 } });
    const summary = await trainForecastModel({
      tf,
      backend,
      forecast: weak,
      series: series(2),
      nowMs: NOW_MS + 2 * HOUR_MS,
      checkpoints: stores.latest,
      serving: stores.serving,
    });
    const { decision, evaluation } = summary;
    assert.equal(decision!.promoted, false);
    assert.equal(decision!.servingVersion, champion.version, 'the champion keeps serving');
    assert.match(decision!.reason, /does not beat (the serving model|persistence)/);
    assert.equal(evaluation!.championVersion, champion.version);
    assert.equal(evaluation!.methods.champion!.windows, evaluation!.methods.model!.windows, 'the champion is scored on the same windows');
    assert.ok(evaluation!.methods.champion!.mae < evaluation!.methods.model!.mae);
    assert.equal(summary.servingCheckpointId, null);
    assert.equal((await stores.serving.loadLatest())!.info.id, before, 'the serving checkpoint is untouched');
  });

  it("a retrain warm-starts from the serving model's weights (training.warmStart, default true)", async () => {
    const oneEpoch = forecastConfig({ ...forecast, training: { ...forecast.training, epochs: 1 } });
    const scratch = forecastCheckpoints(tempDir(), forecast);
    const warm = await trainForecastModel({
      tf,
      backend,
      forecast: oneEpoch,
      series: series(24),
      nowMs: NOW_MS + 24 * HOUR_MS,
      checkpoints: scratch.latest,
      serving: stores.serving,
    });
    const coldConfig = forecastConfig({ ...forecast, training: { ...forecast.training, epochs: 1, warmStart: false } });
    const cold = await trainForecastModel({
      tf,
      backend,
      forecast: coldConfig,
      series: series(24),
      nowMs: NOW_MS + 24 * HOUR_MS,
      checkpoints: scratch.latest,
      serving: scratch.serving,
    });
    assert.equal(warm.warmStartedFrom, champion.version);
    assert.equal(cold.warmStartedFrom, null);
    assert.ok(warm.loss[0] < cold.loss[0] / 2, `warm first-epoch loss ${warm.loss[0]} vs cold ${cold.loss[0]}`);
  });
});
