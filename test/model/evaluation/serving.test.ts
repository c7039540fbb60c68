/**
 * What serves a forecast and how ready it is, as published: ForecastJobs on a database and checkpoint
 * stores, with the records a training leaves (readiness, servedBy, intervals, degraded baselines).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../../src/log.js';
import { initBackend, type BackendName, type Tf } from '../../../src/model/backend.js';
import { linearAt, seasonalNaiveAt } from '../../../src/model/evaluation/baselines.js';
import { forecastCheckpoints } from '../../../src/model/stores.js';
import { trainForecastModel, type TrainingSummary } from '../../../src/model/training.js';
import type { ForecastMessage } from '../../../src/publish/forecastMessage.js';
import { ForecastJobs } from '../../../src/scheduler/forecastJobs.js';
import { openDatabase, type Db } from '../../../src/store/database.js';
import { ModelVersionStore } from '../../../src/store/modelVersions.js';
import { ReadingStore } from '../../../src/store/readings.js';
import { fillShortGaps, resampleMean } from '../../../src/windowing/index.js';
import { forecastConfig, HOUR_MS, NOW_MS, ORIGIN_MS, removeTempDirs, sineSeries, tempDir } from '../fixtures.js';

const forecast = forecastConfig({
  steps: 12,
  horizon: 4,
  layers: [{ type: 'lstm', units: 8 }, { type: 'dense' }],
  training: { epochs: 8, batchSize: 32, learningRate: 0.01, seed: 11 },
});

let tf: Tf;
let backend: BackendName;
let db: Db;
let readings: ReadingStore;
let versions: ModelVersionStore;
let root: string;
let trained: TrainingSummary;
const published: ForecastMessage[] = [];
const failures = new Map<string, { message: string; kind?: string }>();

function jobs(): ForecastJobs {
  return new ForecastJobs({
    tf,
    backend,
    checkpointRoot: root,
    readings,
    versions,
    clock: () => NOW_MS,
    log: createLogger('silent'),
    publish: (message) => published.push(message),
    trainingFailure: (name) => failures.get(name),
  });
}

before(async () => {
  ({ tf, name: backend } = await initBackend('wasm', { allowNative: false }));
  ({ db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' }));
  readings = new ReadingStore(db);
  versions = new ModelVersionStore(db);
  root = tempDir('forecastd-serving-');
  const history = sineSeries({ points: 240, noise: 0.3, seed: 8 });
  readings.insertMany(Array.from(history.timestampsMs, (ts, index) => ({ series: history.name, ts, value: history.values[index] })));
});

after(() => {
  db?.close();
  removeTempDirs();
});

describe('ForecastJobs: readiness, servedBy and intervals in the forecast message', () => {
  it('warming up: before any training nothing is published', async () => {
    const forecasts = jobs();
    assert.equal(await forecasts.load(forecast), false);
    assert.equal(forecasts.run(forecast), null);
    assert.equal(forecasts.counters.skippedNoModel, 1);
    assert.deepEqual(forecasts.readiness(forecast), { servedBy: null, readiness: 'warming_up', reason: 'the first training has not finished yet' });
    const message =
      'forecast "sine" has 3 training windows, needs at least 32 (about 54 h of history without long gaps); about 24 h more, ready around 2024-02-01T12:00:00.000Z';
    failures.set(forecast.name, { message, kind: 'not_enough_history' });
    assert.equal(forecasts.run(forecast), null, 'not enough history is still warming up, not degraded');
    assert.deepEqual(forecasts.readiness(forecast), { servedBy: null, readiness: 'warming_up', reason: message }, 'how much more, and when');
    failures.clear();
  });

  it('ready: a promoted model serves, with conformal lower/upper per level and its scores next to the baselines', async () => {
    const stores = forecastCheckpoints(root, forecast);
    const series = readings.read(forecast.target, 0, NOW_MS);
    trained = await trainForecastModel({
      tf,
      backend,
      forecast,
      series: [series],
      nowMs: NOW_MS,
      checkpoints: stores.latest,
      best: stores.best,
      serving: stores.serving,
    });
    assert.equal(trained.decision?.promoted, true, trained.decision?.reason);
    versions.record(trained);
    const forecasts = jobs();
    assert.equal(await forecasts.load(forecast), true);
    const message = forecasts.run(forecast)!;
    assert.ok(message);
    assert.equal(message.readiness, 'ready');
    assert.equal(message.servedBy, 'model');
    assert.equal(message.model.version, trained.version);
    assert.deepEqual(message.intervals, { levels: [0.8, 0.95], method: 'conformal', calibrationWindows: trained.evaluation!.windows });
    for (const point of message.points) {
      assert.deepEqual(Object.keys(point.lower!), ['80', '95']);
      assert.ok(point.lower!['95'] <= point.lower!['80'] && point.lower!['80'] <= point.value, JSON.stringify(point));
      assert.ok(point.value <= point.upper!['80'] && point.upper!['80'] <= point.upper!['95'], JSON.stringify(point));
    }
    const validation = message.model.validation!;
    const methods = trained.evaluation!.methods;
    assert.equal(validation.mae, Math.round(methods.model!.mae * 1e4) / 1e4);
    assert.equal(validation.persistenceMae, Math.round(methods.persistence!.mae * 1e4) / 1e4);
    assert.ok(validation.mase !== null && validation.linearMae !== null && validation.seasonalNaiveMae !== null);
  });

  it('every training is recorded with its config hash, data range and one metrics row per method on the same windows', () => {
    const rows = versions.metrics(trained.version);
    assert.deepEqual(
      rows.map((row) => row.method),
      ['linear', 'model', 'persistence', 'seasonal_naive'],
    );
    assert.ok(rows.every((row) => row.windows === trained.evaluation!.windows));
    assert.ok(rows.every((row) => row.byStep.mae.length === forecast.horizon && row.coverage?.length === 2));
    const columns = db
      .prepare('SELECT config_hash, data_from, data_to, promoted, served_by, decision FROM model_versions WHERE version = ?')
      .get(trained.version) as Record<string, unknown>;
    assert.deepEqual(columns, {
      config_hash: trained.configHash,
      data_from: trained.dataRange.fromMs,
      data_to: trained.dataRange.toMs,
      promoted: 1,
      served_by: 'model',
      decision: trained.decision!.reason,
    });
    const stored = versions.get(trained.version)!;
    assert.deepEqual(stored.scaler, trained.scaler);
    assert.deepEqual(stored.loss, trained.loss);
    assert.deepEqual(stored.valLoss, trained.valLoss);
  });

  it('the last training failed: degraded, with the reason; a model that beat persistence keeps serving', async () => {
    failures.set(forecast.name, { message: 'worker ran out of memory', kind: 'out_of_memory' });
    try {
      const forecasts = jobs();
      await forecasts.load(forecast);
      const message = forecasts.run(forecast)!;
      assert.equal(message.readiness, 'degraded');
      assert.match(message.readinessReason, /last training failed: worker ran out of memory/);
      assert.equal(message.servedBy, 'model');
    } finally {
      failures.clear();
    }
  });

  /** Records a later training whose evaluation says no model beats persistence and `servedBy` serves. */
  function recordLoss(servedBy: 'linear' | 'seasonal_naive', minutesLater: number): string {
    const version = `sine@lost-${servedBy}`;
    versions.record({
      ...trained,
      version,
      startedAt: trained.startedAt + minutesLater * 60_000,
      decision: {
        promoted: false,
        servingVersion: null,
        servedBy,
        modelBeatsPersistence: false,
        bestBaseline: { method: servedBy, mae: 1 },
        reason: `MAE 9 does not beat persistence (2): ${servedBy} serves`,
      },
    });
    return version;
  }

  function expectedBaseline(compute: (column: Float64Array, rows: number, out: Float64Array) => boolean, historyRows: number): number[] {
    const rows = historyRows + forecast.maxGapSteps + 1;
    const fromMs = ORIGIN_MS - rows * HOUR_MS;
    const target = readings.read(forecast.target, fromMs, ORIGIN_MS);
    const column = fillShortGaps(resampleMean(target.timestampsMs, target.values, fromMs, HOUR_MS, rows), forecast.maxGapSteps);
    const out = new Float64Array(forecast.horizon);
    assert.ok(compute(column, rows, out));
    return Array.from(out, (value) => Math.round(value * 1e4) / 1e4);
  }

  it("no model beats persistence: degraded, the best baseline's forecast (linear) with its own intervals", async () => {
    const version = recordLoss('linear', 1);
    const forecasts = jobs();
    await forecasts.load(forecast);
    const message = forecasts.run(forecast)!;
    assert.equal(message.readiness, 'degraded');
    assert.equal(message.servedBy, 'linear');
    assert.match(message.readinessReason, /no model beats persistence/);
    assert.equal(message.model.version, version, 'the training whose evaluation chose the baseline');
    const linear = trained.evaluation!.linear!;
    assert.deepEqual(
      message.points.map((point) => point.value),
      expectedBaseline((column, rows, out) => linearAt(linear, column, rows, out), linear.lags + 1),
    );
    assert.equal(message.model.validation!.mae, Math.round(trained.evaluation!.methods.linear!.mae * 1e4) / 1e4);
    const widths = trained.evaluation!.methods.linear!.intervalWidths;
    message.points.forEach((point, step) => assert.ok(Math.abs(point.upper!['80'] - point.value - widths[0][step]) < 1e-3));
    assert.equal(forecasts.counters.issuedByBaseline, 1);
  });

  it('… or seasonal naive: the value one season earlier', async () => {
    recordLoss('seasonal_naive', 2);
    const forecasts = jobs();
    await forecasts.load(forecast);
    const message = forecasts.run(forecast)!;
    assert.equal(message.servedBy, 'seasonal_naive');
    const season = trained.evaluation!.season.length!;
    assert.deepEqual(
      message.points.map((point) => point.value),
      expectedBaseline((column, rows, out) => seasonalNaiveAt(column, rows, forecast.horizon, season, out), season),
    );
  });

  it('a training of another model shape says nothing about this configuration', async () => {
    const reshaped = forecastConfig({ ...forecast, steps: 16 });
    const forecasts = jobs();
    assert.equal(await forecasts.load(reshaped), false, 'no checkpoint of that shape, no evaluation of that shape');
    assert.equal(forecasts.run(reshaped), null);
  });
});
