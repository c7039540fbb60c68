import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initBackend, type BackendName, type Tf } from '../../src/model/backend.js';
import { CheckpointStore, type CheckpointInfo } from '../../src/model/checkpoint.js';
import { Forecaster } from '../../src/model/forecaster.js';
import { forecastCheckpoints } from '../../src/model/stores.js';
import { shapeKeyFor, trainForecastModel } from '../../src/model/training.js';
import { createLogger } from '../../src/log.js';
import { ForecastJobs } from '../../src/scheduler/forecastJobs.js';
import { openDatabase } from '../../src/store/database.js';
import { ModelVersionStore } from '../../src/store/modelVersions.js';
import { ReadingStore } from '../../src/store/readings.js';
import type { SeriesReadings } from '../../src/windowing/index.js';
import { forecastConfig, HOUR_MS, NOW_MS, ORIGIN_MS, prng, removeTempDirs, sineSeries, tempDir } from './fixtures.js';

let tf: Tf;
let backend: BackendName;

const forecast = forecastConfig({
  steps: 12,
  horizon: 4,
  maxGapSteps: 3,
  layers: [{ type: 'lstm', units: 8 }, { type: 'dense' }],
  training: { epochs: 3, batchSize: 64, learningRate: 0.01, seed: 9 },
});
const series = sineSeries({ points: 300, noise: 0.3, seed: 2 });
let store: CheckpointStore;
/** Newest first, as store.list() gives them. */
let checkpoints: CheckpointInfo[];

before(async () => {
  ({ tf, name: backend } = await initBackend('wasm', { allowNative: false }));
  store = new CheckpointStore(tempDir(), forecast.name, { keep: 10 });
  await trainForecastModel({ tf, backend, forecast, series: [series], nowMs: NOW_MS, checkpoints: store });
  checkpoints = await store.list();
  assert.equal(checkpoints.length, 3, 'one checkpoint per epoch');
});
after(removeTempDirs);

/** The trained store, copied, so that a test may damage it without touching the others. */
function copyOfStore(): CheckpointStore {
  const root = tempDir('forecastd-forecaster-');
  fs.cpSync(store.dir, path.join(root, path.basename(store.dir)), { recursive: true });
  const copy = new CheckpointStore(root, forecast.name, { keep: 10 });
  assert.equal(path.basename(copy.dir), path.basename(store.dir));
  return copy;
}

async function loadForecaster(from = store, shapeKey = shapeKeyFor(forecast)) {
  return Forecaster.load(tf, from, shapeKey);
}

/** The readings of `readings` whose timestamp passes `keep`. */
function filterSeries(readings: SeriesReadings, keep: (tsMs: number) => boolean): SeriesReadings {
  const indices = Array.from(readings.timestampsMs.keys()).filter((i) => keep(readings.timestampsMs[i]));
  return {
    name: readings.name,
    timestampsMs: Float64Array.from(indices, (i) => readings.timestampsMs[i]),
    values: Float64Array.from(indices, (i) => readings.values[i]),
  };
}

describe('Forecaster.load', () => {
  it("returns a forecaster on the newest checkpoint, with the training's metadata", async () => {
    const { forecaster, rejected } = await loadForecaster();
    assert.ok(forecaster);
    try {
      assert.deepEqual(rejected, []);
      assert.equal(forecaster.checkpointId, checkpoints[0].id);
      assert.equal(forecaster.meta.epoch, 3);
      assert.equal(forecaster.meta.steps, forecast.steps);
      assert.equal(forecaster.meta.horizon, forecast.horizon);
      assert.equal(forecaster.meta.intervalSeconds, 3600);
      assert.equal(forecaster.meta.shapeKey, shapeKeyFor(forecast));
      assert.deepEqual(forecaster.meta.featureNames, ['site.temp']);
    } finally {
      forecaster.dispose();
    }
  });

  it('returns no forecaster (and no rejection) for an empty store', async () => {
    const empty = new CheckpointStore(tempDir(), forecast.name);
    assert.deepEqual(await loadForecaster(empty), { forecaster: null, rejected: [] });
  });

  it('a newest checkpoint whose weights.bin holds garbage is rejected, and the previous one is used', async () => {
    const damaged = copyOfStore();
    const [newest, previous] = await damaged.list();
    const weightsFile = path.join(damaged.dir, newest.id, 'weights.bin');
    const size = fs.statSync(weightsFile).size;
    const random = prng(77);
    fs.writeFileSync(weightsFile, Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 256))));

    const { forecaster, rejected } = await loadForecaster(damaged);
    assert.ok(forecaster, 'falls back to an older checkpoint');
    try {
      assert.equal(rejected.length, 1);
      assert.equal(rejected[0].id, newest.id);
      assert.match(rejected[0].reason, /weights\.bin/);
      assert.equal(forecaster.checkpointId, previous.id);
      assert.equal(forecaster.meta.epoch, 2);
      assert.equal(forecaster.predict([series], NOW_MS)?.points.length, forecast.horizon);
    } finally {
      forecaster.dispose();
    }
  });

  it('a truncated weights.bin is rejected too; with two damaged, the oldest good one is used', async () => {
    const damaged = copyOfStore();
    const [newest, middle, oldest] = await damaged.list();
    for (const id of [newest.id, middle.id]) {
      const weightsFile = path.join(damaged.dir, id, 'weights.bin');
      fs.truncateSync(weightsFile, Math.floor(fs.statSync(weightsFile).size / 2));
    }
    const { forecaster, rejected } = await loadForecaster(damaged);
    assert.ok(forecaster);
    try {
      assert.deepEqual(
        rejected.map((entry) => entry.id),
        [newest.id, middle.id],
      );
      for (const entry of rejected) assert.match(entry.reason, /weights\.bin/);
      assert.equal(forecaster.checkpointId, oldest.id);
      assert.equal(forecaster.meta.epoch, 1);
    } finally {
      forecaster.dispose();
    }
  });

  it('a config of another shape (other steps) gets no forecaster: "built for another model configuration"', async () => {
    const other = forecastConfig({ ...forecast, steps: forecast.steps + 4 });
    assert.notEqual(shapeKeyFor(other), shapeKeyFor(forecast));
    const { forecaster, rejected } = await loadForecaster(store, shapeKeyFor(other));
    assert.equal(forecaster, null);
    assert.deepEqual(rejected, [{ id: checkpoints[0].id, reason: 'built for another model configuration' }]);
  });

  it('a config of another horizon gets no forecaster either', async () => {
    const other = forecastConfig({ ...forecast, horizon: forecast.horizon + 1 });
    const { forecaster, rejected } = await loadForecaster(store, shapeKeyFor(other));
    assert.equal(forecaster, null);
    assert.equal(rejected.at(-1)?.reason, 'built for another model configuration');
  });
});

describe('Forecaster.predict', () => {
  let forecaster: Forecaster;
  before(async () => {
    forecaster = (await loadForecaster()).forecaster!;
    assert.ok(forecaster);
  });
  after(() => forecaster?.dispose());

  it('gives `horizon` points at consecutive interval-aligned timestamps starting at the origin', () => {
    const result = forecaster.predict([series], NOW_MS);
    assert.ok(result);
    assert.equal(result.originMs, ORIGIN_MS, 'the origin is the end of the last closed bucket');
    assert.equal(result.points.length, forecast.horizon);
    result.points.forEach((point, step) => {
      assert.equal(point.ts, ORIGIN_MS + step * HOUR_MS);
      assert.equal(point.ts % HOUR_MS, 0);
      assert.ok(Number.isFinite(point.value));
    });
  });

  it("answers in the series' units: lastObserved is the last closed bucket's reading, forecasts near the signal's range", () => {
    const result = forecaster.predict([series], NOW_MS)!;
    const lastReading = series.values[series.values.length - 1];
    assert.equal(series.timestampsMs[series.timestampsMs.length - 1], ORIGIN_MS - HOUR_MS + 10 * 60_000);
    assert.ok(Math.abs(result.lastObserved - lastReading) < 1e-3, `lastObserved ${result.lastObserved} vs reading ${lastReading}`);
    // The signal is 20 ± 5: a scaled (unconverted) output would sit near 0.
    for (const point of result.points) assert.ok(point.value > 10 && point.value < 30, `forecast ${point.value}`);
  });

  it('any "now" inside the same bucket gives the same forecast; the next hour moves the origin', () => {
    const early = forecaster.predict([series], ORIGIN_MS)!;
    const late = forecaster.predict([series], ORIGIN_MS + HOUR_MS - 1)!;
    assert.deepEqual(late, early);
    assert.deepEqual(forecaster.predict([series], NOW_MS), early);

    const longer = sineSeries({ points: 301, endMs: ORIGIN_MS + HOUR_MS, noise: 0.3, seed: 2 });
    const next = forecaster.predict([longer], NOW_MS + HOUR_MS)!;
    assert.equal(next.originMs, ORIGIN_MS + HOUR_MS);
    assert.deepEqual(
      next.points.map((point) => point.ts),
      early.points.map((point) => point.ts + HOUR_MS),
    );
  });

  it('needs only the readings inputRange names; readings in the open bucket are ignored', () => {
    const range = forecaster.inputRange(NOW_MS);
    assert.equal(range.toMs, ORIGIN_MS);
    assert.ok(ORIGIN_MS - range.fromMs >= forecast.steps * HOUR_MS, 'the range covers at least one input window');
    const full = forecaster.predict([series], NOW_MS);
    const trimmed = forecaster.predict([filterSeries(series, (ts) => ts >= range.fromMs && ts < range.toMs)], NOW_MS);
    assert.deepEqual(trimmed, full);
    const withOpenBucket: SeriesReadings = {
      name: series.name,
      timestampsMs: Float64Array.from([...series.timestampsMs, ORIGIN_MS + 60_000]),
      values: Float64Array.from([...series.values, 1_000]),
    };
    assert.deepEqual(forecaster.predict([withOpenBucket], NOW_MS), full);
  });

  it('a window with a long gap (more than maxGapSteps) gives null', () => {
    const gapStart = ORIGIN_MS - 8 * HOUR_MS; // 5 empty buckets inside the last 12
    const withGap = filterSeries(series, (ts) => ts < gapStart || ts >= gapStart + 5 * HOUR_MS);
    assert.equal(forecaster.predict([withGap], NOW_MS), null);
  });

  it('a short gap (up to maxGapSteps) is filled and still forecasts', () => {
    const gapStart = ORIGIN_MS - 8 * HOUR_MS; // 3 empty buckets
    const withGap = filterSeries(series, (ts) => ts < gapStart || ts >= gapStart + 3 * HOUR_MS);
    const result = forecaster.predict([withGap], NOW_MS);
    assert.ok(result);
    assert.equal(result.points.length, forecast.horizon);
  });

  it('no reading in the last closed bucket, or no readings at all, gives null', () => {
    const stale = filterSeries(series, (ts) => ts < ORIGIN_MS - HOUR_MS);
    assert.equal(forecaster.predict([stale], NOW_MS), null);
    const empty = { name: series.name, timestampsMs: new Float64Array(0), values: new Float64Array(0) };
    assert.equal(forecaster.predict([empty], NOW_MS), null);
  });

  it('1,000 predict() calls leave tf.memory().numTensors unchanged', () => {
    forecaster.predict([series], NOW_MS); // warm-up
    const before = tf.memory().numTensors;
    for (let call = 0; call < 1000; call++) {
      const result = forecaster.predict([series], NOW_MS + (call % 2) * 60_000);
      assert.ok(result);
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it('a null forecast (gap) leaves no tensor behind either', () => {
    const withGap = filterSeries(series, (ts) => ts < ORIGIN_MS - 8 * HOUR_MS);
    const before = tf.memory().numTensors;
    for (let call = 0; call < 50; call++) assert.equal(forecaster.predict([withGap], NOW_MS), null);
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('tensor hygiene across trainings and loads', () => {
  it('Forecaster.load + dispose returns numTensors to where it was', async () => {
    const before = tf.memory().numTensors;
    for (let round = 0; round < 3; round++) {
      const { forecaster } = await loadForecaster();
      assert.ok(forecaster);
      assert.ok(tf.memory().numTensors > before, 'a loaded model holds its weights');
      forecaster.predict([series], NOW_MS);
      forecaster.dispose();
      assert.equal(tf.memory().numTensors, before, `after load/dispose round ${round + 1}`);
    }
  });

  it("repeated trainings do not grow numTensors (beyond the first training's documented constant)", async () => {
    const tiny = forecastConfig({
      steps: 8,
      horizon: 3,
      layers: [{ type: 'lstm', units: 4 }, { type: 'dense' }],
      training: { epochs: 1, batchSize: 64, seed: 4 },
    });
    const trainingStore = new CheckpointStore(tempDir(), tiny.name);
    const train = () =>
      trainForecastModel({ tf, backend, forecast: tiny, series: [sineSeries({ points: 150 })], nowMs: NOW_MS, checkpoints: trainingStore });
    const start = tf.memory().numTensors;
    await train();
    const afterFirst = tf.memory().numTensors;
    await train();
    const afterSecond = tf.memory().numTensors;
    await train();
    const afterThird = tf.memory().numTensors;
    const growth = [afterFirst - start, afterSecond - afterFirst, afterThird - afterSecond];
    assert.equal(afterSecond, afterFirst, `tensors left per training: ${growth.join(', ')}`);
    assert.equal(afterThird, afterFirst, `tensors left per training: ${growth.join(', ')}`);
  });

  it('1,000 forecast cycles and 3 retrains in one process (the daemon path: train → record → load → issue) leave numTensors where it started', async (t) => {
    const tiny = forecastConfig({
      steps: 8,
      horizon: 3,
      layers: [{ type: 'lstm', units: 4 }, { type: 'dense' }],
      training: { epochs: 2, batchSize: 64, learningRate: 0.01, seed: 4 },
    });
    const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
    const readings = new ReadingStore(db);
    const versions = new ModelVersionStore(db);
    const history = sineSeries({ points: 200, noise: 0.3, seed: 6 });
    readings.insertMany(Array.from(history.timestampsMs, (ts, index) => ({ series: history.name, ts, value: history.values[index] })));
    let clock = NOW_MS;
    const root = tempDir('forecastd-hygiene-');
    const jobs = new ForecastJobs({
      tf,
      backend,
      checkpointRoot: root,
      readings,
      versions,
      clock: () => clock,
      log: createLogger('silent'),
      publish: () => undefined,
    });
    const stores = forecastCheckpoints(root, tiny);
    const startTensors = tf.memory().numTensors;
    const startRss = process.memoryUsage().rss;
    const servedBy = new Map<string, number>();
    let cycles = 0;
    try {
      for (let retrain = 0; retrain < 3; retrain++) {
        const series = readings.read(history.name, clock - 30 * 24 * HOUR_MS, clock);
        const summary = await trainForecastModel({
          tf,
          backend,
          forecast: tiny,
          series: [series],
          nowMs: clock,
          checkpoints: stores.latest,
          best: stores.best,
          serving: stores.serving,
        });
        versions.record(summary);
        assert.ok(await jobs.load(tiny));
        for (let cycle = 0; cycle < (retrain < 2 ? 333 : 334); cycle++) {
          // A new reading in the bucket that just closed, then the tick.
          readings.insertMany([{ series: history.name, ts: clock - 50 * 60_000, value: 20 + 5 * Math.sin((2 * Math.PI * (clock / HOUR_MS)) / 24) }]);
          const message = jobs.run(tiny);
          assert.ok(message, `cycle ${cycles}`);
          servedBy.set(message.servedBy, (servedBy.get(message.servedBy) ?? 0) + 1);
          cycles++;
          clock += HOUR_MS;
        }
      }
    } finally {
      jobs.dispose();
      db.close();
    }
    assert.equal(cycles, 1000);
    const rssGrowthMb = (process.memoryUsage().rss - startRss) / 2 ** 20;
    t.diagnostic(
      `1,000 forecasts (${[...servedBy].map(([name, count]) => `${count} by ${name}`).join(', ')}) and 3 retrains: numTensors ${startTensors} -> ${tf.memory().numTensors}, RSS growth ${rssGrowthMb.toFixed(1)} MB`,
    );
    assert.equal(tf.memory().numTensors, startTensors, 'every tensor of the trainings, the loads and the forecasts is released');
  });
});
