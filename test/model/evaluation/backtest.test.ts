/**
 * `forecastd backtest` on real data (UCI Occupancy, room temperature, about one reading a minute,
 * forecast on a 10-minute grid): the CSV's shape, and the baselines scored on exactly the model's origins.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backtestCommand } from '../../../src/cli/commands/backtest.js';
import { UsageError } from '../../../src/cli/usage.js';
import { parseConfig } from '../../../src/config/load.js';
import { initBackend } from '../../../src/model/backend.js';
import { runBacktest } from '../../../src/model/backtest.js';
import { CheckpointStore } from '../../../src/model/checkpoint.js';
import { Forecaster, type ForecastResult } from '../../../src/model/forecaster.js';
import { shapeKeyFor } from '../../../src/model/training.js';
import { openDatabase } from '../../../src/store/database.js';
import { ReadingStore } from '../../../src/store/readings.js';
import type { SeriesReadings } from '../../../src/windowing/index.js';
import { removeTempDirs, tempDir } from '../fixtures.js';
import { bucketMeans, DATASETS, importSeries, missing, readColumn } from './realData.js';

const skip = missing(DATASETS.occupancy);
const INTERVAL_MS = 10 * 60_000;
const HORIZON = 6;
const STRIDE = 2;
const FROM = '2015-02-11T15:00:00Z';
const TO = '2015-02-14T00:00:00Z';
const forecastFields = {
  name: 'room',
  target: 'room.temp',
  interval: '10m',
  steps: 36,
  horizon: HORIZON,
  layers: [{ type: 'lstm', units: 8 }, { type: 'dense' }],
  training: { epochs: 3, seed: 1 },
};

after(removeTempDirs);

describe('forecastd backtest on the UCI Occupancy room temperature (10-minute grid)', { skip }, () => {
  let temperature: SeriesReadings;
  let configFile: string;
  let csvFile: string;
  let json: Record<string, any>;
  let stderr = '';
  let csv: string[][];

  before(async () => {
    temperature = readColumn(DATASETS.occupancy, 'Temperature', 'room.temp');
    const stateDir = tempDir('forecastd-backtest-');
    const { db } = openDatabase({ path: path.join(stateDir, 'forecastd.db'), synchronous: 'NORMAL' });
    try {
      assert.equal(importSeries(new ReadingStore(db), temperature), temperature.values.length);
    } finally {
      db.close();
    }
    configFile = path.join(stateDir, 'forecastd.yaml');
    fs.writeFileSync(configFile, JSON.stringify({ storage: { stateDir }, model: { backend: 'wasm' }, forecasts: [forecastFields] }));
    csvFile = path.join(stateDir, 'room.csv');
    let stdout = '';
    const code = await backtestCommand(
      [
        'room',
        '--config',
        configFile,
        '--train-from',
        '2015-02-04T18:00:00Z',
        '--train-until',
        '2015-02-08T00:00:00Z',
        '--val-until',
        '2015-02-09T00:00:00Z',
        '--from',
        FROM,
        '--to',
        TO,
        '--stride',
        String(STRIDE),
        '--out',
        csvFile,
        '--json',
      ],
      { stdout: (text) => void (stdout += text), stderr: { write: (text: string) => void (stderr += text), isTTY: false } },
    );
    assert.equal(code, 0);
    json = JSON.parse(stdout);
    csv = fs
      .readFileSync(csvFile, 'utf8')
      .trimEnd()
      .split('\n')
      .map((line) => line.split(','));
  });

  it('writes origin,step,ts,actual,predicted,lower,upper: `horizon` consecutive steps per origin, stride apart, inside [from, to)', () => {
    assert.deepEqual(csv[0], ['origin', 'step', 'ts', 'actual', 'predicted', 'lower', 'upper']);
    const rows = csv.slice(1);
    assert.equal(rows.length, json.origins.count * HORIZON);
    assert.equal(json.rows, rows.length);
    const origins = [...new Set(rows.map((row) => row[0]))].map(Date.parse);
    assert.equal(origins.length, json.origins.count);
    assert.equal(new Date(origins[0]).toISOString(), json.origins.first);
    assert.equal(new Date(origins.at(-1)!).toISOString(), json.origins.last);
    for (const origin of origins) {
      assert.ok(origin >= Date.parse(FROM) && origin < Date.parse(TO));
      assert.equal((origin - origins[0]) % (STRIDE * INTERVAL_MS), 0, 'every origin on the stride');
    }
    rows.forEach((row, index) => {
      const step = (index % HORIZON) + 1;
      assert.equal(Number(row[1]), step);
      assert.equal(Date.parse(row[2]), Date.parse(row[0]) + (step - 1) * INTERVAL_MS, 'ts is the bucket start of the step');
      const [actual, predicted, lower, upper] = row.slice(3).map(Number);
      assert.ok([actual, predicted, lower, upper].every(Number.isFinite), row.join(','));
      assert.ok(lower <= predicted && predicted <= upper, row.join(','));
    });
  });

  it('the actual values are the 10-minute bucket means of the readings', () => {
    const gridStart = Date.parse(csv[1][0]);
    const means = bucketMeans(temperature, gridStart, INTERVAL_MS, 2000);
    for (const row of csv.slice(1, 200)) {
      const expected = means[(Date.parse(row[2]) - gridStart) / INTERVAL_MS];
      assert.ok(Math.abs(Number(row[3]) - expected) < 1e-5, `${row[2]}: ${row[3]} vs ${expected}`);
    }
  });

  it("every method is scored on exactly the CSV's origins: MAE recomputed from the CSV and the raw readings agrees", () => {
    const { methods } = json;
    assert.deepEqual(Object.keys(methods).sort(), ['linear', 'model', 'persistence', 'seasonal_naive']);
    for (const scores of Object.values<Record<string, any>>(methods)) {
      assert.equal(scores.origins, json.origins.count, 'same number of origins for every method');
      assert.equal(scores.maeByStep.length, HORIZON);
      for (const key of ['80', '95']) assert.ok(scores.coverage[key] >= 0 && scores.coverage[key] <= 1);
    }
    const rows = csv.slice(1).map((row) => ({ origin: Date.parse(row[0]), step: Number(row[1]), actual: Number(row[3]), predicted: Number(row[4]) }));
    const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
    const modelMae = mean(rows.map((row) => Math.abs(row.actual - row.predicted)));
    assert.ok(Math.abs(modelMae - methods.model.mae) < 1e-5, `model MAE from the CSV ${modelMae} vs reported ${methods.model.mae}`);

    // Persistence and seasonal naive, computed here from the raw readings at the CSV's origins only.
    const gridStart = rows[0].origin - 2000 * INTERVAL_MS;
    const means = bucketMeans(temperature, gridStart, INTERVAL_MS, 4000);
    const at = (ms: number) => means[(ms - gridStart) / INTERVAL_MS];
    const persistenceMae = mean(rows.map((row) => Math.abs(row.actual - at(row.origin - INTERVAL_MS))));
    assert.ok(Math.abs(persistenceMae - methods.persistence.mae) < 1e-5, `persistence MAE ${persistenceMae} vs reported ${methods.persistence.mae}`);
    const season: number = json.season.length;
    assert.ok(season > 100 && season < 160, `a daily cycle of about 144 ten-minute steps, found ${season}`);
    const seasonalMae = mean(
      rows.map((row) => Math.abs(row.actual - at(row.origin + (row.step - 1 - season * (Math.floor((row.step - 1) / season) + 1)) * INTERVAL_MS))),
    );
    assert.ok(
      Math.abs(seasonalMae - methods.seasonal_naive.mae) < 1e-5,
      `seasonal naive MAE ${seasonalMae} vs reported ${methods.seasonal_naive.mae}`,
    );
  });

  it('reports MAE, RMSE, MSE on scaled values, MASE and coverage, and shows progress while it runs', () => {
    for (const scores of Object.values<Record<string, number>>(json.methods)) {
      assert.ok(scores.rmse >= scores.mae);
      assert.ok(scores.mseScaled > 0 && scores.mase > 0);
    }
    assert.equal(json.maseScale.lag, json.season.length);
    assert.match(stderr, /Epoch 1\/3 - .*loss: .* - val_loss: /, 'a line per training epoch');
    assert.match(stderr, /method +MAE +RMSE +MSE\(scaled\) +MASE +cov@80% +cov@95%/, 'the table, on stderr with --json');
    assert.match(stderr, /model \(LSTM\)/);
    assert.equal(json.training.epochs, 3);
  });

  it("its forecasts are the daemon's: the same model in a Forecaster predicts the same values at an origin", async () => {
    const { tf, name: backend } = await initBackend('wasm', { allowNative: false });
    const forecast = parseConfig({ forecasts: [{ ...forecastFields, training: { epochs: 1, seed: 2 } }] }).forecasts[0];
    const store = new CheckpointStore(tempDir(), 'room');
    const result = await runBacktest({
      tf,
      backend,
      forecast,
      series: [temperature],
      trainFromMs: Date.parse('2015-02-04T18:00:00Z'),
      trainUntilMs: Date.parse('2015-02-08T00:00:00Z'),
      fromMs: Date.parse('2015-02-12T18:00:00Z'),
      toMs: Date.parse('2015-02-12T20:00:00Z'),
      saveModelTo: store,
    });
    const { forecaster } = await Forecaster.load(tf, store, shapeKeyFor(forecast));
    assert.ok(forecaster);
    try {
      for (const originMs of result.origins) {
        const predicted: ForecastResult = forecaster.predict([temperature], originMs)!;
        const rows = result.rows.filter((row) => row.originMs === originMs);
        assert.deepEqual(
          predicted.points.map((point) => point.ts),
          rows.map((row) => row.tsMs),
        );
        predicted.points.forEach((point, step) =>
          assert.ok(Math.abs(point.value - rows[step].predicted) < 1e-4, `${point.value} vs ${rows[step].predicted}`),
        );
      }
    } finally {
      forecaster.dispose();
    }
  });

  it('refuses ranges that would test on training data', async () => {
    await assert.rejects(
      backtestCommand(['room', '--config', configFile, '--train-until', '2015-02-08T00:00:00Z', '--from', '2015-02-07T00:00:00Z', '--to', TO]),
      (error: unknown) => error instanceof UsageError && /--from must not be before --train-until/.test(error.message),
    );
    await assert.rejects(backtestCommand(['room', '--config', configFile, '--from', FROM, '--to', TO]), /needs --train-until/);
  });
});
