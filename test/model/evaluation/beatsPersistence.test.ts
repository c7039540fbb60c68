/**
 * On real data, the default model config beats persistence on a held-out tail, through the daemon's own
 * path: the training worker's task body on a database file → the version recorded → ForecastJobs loads
 * the serving model and issues a forecast at every tick of the following days, which no training saw.
 *
 * The model config is the default one, untouched (LSTM(32) → Dense(12), 48 input steps, horizon 12,
 * Adam 0.001, batch 32, up to 30 epochs with early stopping and reduce-LR-on-plateau, 60 days of
 * history, 20 % validation); only the grid interval is set to suit each dataset, and a seed.
 *
 * MASE is scaled by the in-sample seasonal-naive (one day) MAE over the history the model trained on.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../../../src/config/load.js';
import { createLogger } from '../../../src/log.js';
import { initBackend } from '../../../src/model/backend.js';
import type { ForecastMessage } from '../../../src/publish/forecastMessage.js';
import { ForecastJobs } from '../../../src/scheduler/forecastJobs.js';
import runTrainTask from '../../../src/scheduler/trainWorker.js';
import { openDatabase } from '../../../src/store/database.js';
import { ModelVersionStore } from '../../../src/store/modelVersions.js';
import { ReadingStore } from '../../../src/store/readings.js';
import { removeTempDirs, tempDir } from '../fixtures.js';
import { bucketMeans, DATASETS, importSeries, missing, readColumn } from './realData.js';

interface Case {
  title: string;
  file: string;
  column: string;
  interval: string;
  intervalMs: number;
  trainedAt: number;
  tailFrom: number;
  tailTo: number;
}

const CASES: Case[] = [
  {
    // About one reading a minute (Candanedo & Feldheim 2016); the tail starts after a 29-hour outage of the sensor.
    title: 'UCI Occupancy room temperature, 10-minute grid, three days after 2015-02-10 09:40',
    file: DATASETS.occupancy,
    column: 'Temperature',
    interval: '10m',
    intervalMs: 10 * 60_000,
    trainedAt: Date.parse('2015-02-10T09:40:00Z'),
    tailFrom: Date.parse('2015-02-12T00:00:00Z'),
    tailTo: Date.parse('2015-02-15T00:00:00Z'),
  },
  {
    // Hourly air temperature of the gas multisensor (De Vito et al. 2008), with the device's real outages.
    title: 'UCI Air Quality temperature T, hourly, the week after 2004-11-01',
    file: DATASETS.airQuality,
    column: 'T',
    interval: '1h',
    intervalMs: 3_600_000,
    trainedAt: Date.parse('2004-11-01T00:00:00Z'),
    tailFrom: Date.parse('2004-11-01T00:00:00Z'),
    tailTo: Date.parse('2004-11-08T00:00:00Z'),
  },
];

after(removeTempDirs);

for (const testCase of CASES) {
  describe(`the default model beats persistence on held-out real data: ${testCase.title}`, { skip: missing(testCase.file), timeout: 300_000 }, () => {
    it('MASE < 1 and MAE below persistence over forecasts issued by ForecastJobs at every tick', async (t) => {
      const { intervalMs } = testCase;
      const dayRows = 86_400_000 / intervalMs;
      const forecast = parseConfig({ forecasts: [{ name: 'real', target: 'real.series', interval: testCase.interval, training: { seed: 1 } }] })
        .forecasts[0];
      assert.equal(forecast.steps, 48);
      assert.equal(forecast.horizon, 12);
      const { tf, name: backend } = await initBackend('wasm', { allowNative: false });
      const stateDir = tempDir('forecastd-beats-persistence-');
      const databasePath = path.join(stateDir, 'forecastd.db');
      const checkpointRoot = path.join(stateDir, 'checkpoints');
      const { db } = openDatabase({ path: databasePath, synchronous: 'NORMAL' });
      const readings = new ReadingStore(db);
      const versions = new ModelVersionStore(db);
      const series = readColumn(testCase.file, testCase.column, 'real.series');
      importSeries(readings, series);
      try {
        // The worker's task body, as the pool runs it in a thread (with its own read-only connection).
        const summary = await runTrainTask({
          forecast,
          databasePath,
          checkpointRoot,
          backend: 'wasm',
          allowNative: false,
          nowMs: testCase.trainedAt,
        });
        versions.record(summary);
        t.diagnostic(
          `trained ${summary.epochsCompleted} epochs in ${(summary.durationMs / 1000).toFixed(1)} s on ${summary.trainWindows} windows; newest held-out windows: ` +
            Object.entries(summary.evaluation!.methods)
              .map(([method, scores]) => `${method} MAE ${scores.mae.toFixed(3)}`)
              .join(', ') +
            `; ${summary.decision!.reason}`,
        );
        assert.equal(summary.decision!.promoted, true, summary.decision!.reason);

        let clock = testCase.trainedAt;
        const jobs = new ForecastJobs({
          tf,
          backend,
          checkpointRoot,
          readings,
          versions,
          clock: () => clock,
          log: createLogger('silent'),
          publish: () => undefined,
        });
        assert.ok(await jobs.load(forecast));
        const messages: ForecastMessage[] = [];
        let ticks = 0;
        try {
          for (let origin = testCase.tailFrom; origin < testCase.tailTo; origin += intervalMs) {
            clock = origin + 2_000; // just after the bucket closed, as the scheduler issues
            ticks++;
            const message = jobs.run(forecast);
            if (message) messages.push(message);
          }
        } finally {
          jobs.dispose();
        }
        assert.ok(messages.length >= ticks * 0.9, `${messages.length} forecasts in ${ticks} ticks (a gap in the input skips a tick)`);
        assert.ok(messages.every((message) => message.servedBy === 'model' && message.readiness === 'ready'));

        // Scored in original units against the recorded bucket means after each origin.
        const gridStart = testCase.trainedAt - 90 * 86_400_000;
        const means = bucketMeans(series, gridStart, intervalMs, 100 * dayRows);
        const at = (ms: number) => means[(ms - gridStart) / intervalMs];
        let modelError = 0;
        let persistenceError = 0;
        let points = 0;
        let inside80 = 0;
        for (const message of messages) {
          for (const point of message.points) {
            const actual = at(Date.parse(point.ts));
            if (!Number.isFinite(actual)) continue;
            modelError += Math.abs(point.value - actual);
            persistenceError += Math.abs(message.lastObserved - actual);
            if (actual >= point.lower!['80'] && actual <= point.upper!['80']) inside80++;
            points++;
          }
        }
        let scaleSum = 0;
        let scaleCount = 0;
        for (let ms = summary.dataRange.fromMs + dayRows * intervalMs; ms < testCase.trainedAt; ms += intervalMs) {
          const difference = at(ms) - at(ms - dayRows * intervalMs);
          if (Number.isNaN(difference)) continue;
          scaleSum += Math.abs(difference);
          scaleCount++;
        }
        const scale = scaleSum / scaleCount;
        const modelMae = modelError / points;
        const persistenceMae = persistenceError / points;
        const mase = modelMae / scale;
        t.diagnostic(
          `held-out: ${messages.length} forecasts × ${forecast.horizon} steps: model MAE ${modelMae.toFixed(4)}, persistence MAE ${persistenceMae.toFixed(4)} ` +
            `(${((1 - modelMae / persistenceMae) * 100).toFixed(1)} % lower), MASE ${mase.toFixed(3)} (persistence ${(persistenceMae / scale).toFixed(3)}), 80 % interval coverage ${((inside80 / points) * 100).toFixed(1)} %`,
        );
        assert.ok(mase < 1, `MASE ${mase}`);
        assert.ok(modelMae < persistenceMae, `model MAE ${modelMae} vs persistence ${persistenceMae}`);
      } finally {
        db.close();
      }
    });
  });
}
