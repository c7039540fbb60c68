import assert from 'node:assert/strict';
import { accuracyTopic } from '../../src/broker/topics.js';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { collectMetrics } from '../../src/http/metrics.js';
import { renderExposition } from '../../src/http/prometheus.js';
import { Telemetry } from '../../src/http/telemetry.js';
import { forecastMessage } from '../../src/publish/forecastMessage.js';
import { LiveAccuracyJob, type LiveAccuracyReport } from '../../src/scheduler/accuracyJob.js';
import { openDatabase } from '../../src/store/database.js';
import { IssuedForecastStore } from '../../src/store/issuedForecasts.js';
import { ReadingStore } from '../../src/store/readings.js';
import { parseExposition, sampleValue } from '../http/promText.js';

const DAY = 86_400_000;
const INTERVAL = 900_000;
const T0 = Date.UTC(2026, 0, 10);

function setup(windowDays?: number) {
  const config = parseConfig(
    { forecasts: [{ name: 'room', target: 'room.temp', interval: '15m', horizon: 2, evaluation: windowDays ? { liveWindowDays: windowDays } : {} }] },
    'test.yaml',
    {},
  );
  const forecast = config.forecasts[0];
  const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
  const readings = new ReadingStore(db);
  const issued = new IssuedForecastStore(db);
  let now = T0;
  const published: Array<{ topic: string; report: LiveAccuracyReport }> = [];
  // Through the MQTT sink's topic rule, as the daemon publishes it.
  const job = new LiveAccuracyJob({
    issued,
    readings,
    clock: () => now,
    publish: (report) => published.push({ topic: accuracyTopic('forecastd', report.forecast), report }),
  });
  const issue = (atMs: number, values: number[], widths?: number[]) =>
    forecastMessage({
      forecast: 'room',
      target: 'room.temp',
      issuedAtMs: atMs,
      intervalSeconds: 900,
      result: { originMs: atMs, lastObserved: 0, points: values.map((value, step) => ({ ts: atMs + step * INTERVAL, value })) },
      version: 'v1',
      training: null,
      backend: 'cpu',
      evaluation: widths
        ? {
            served: { mae: 1, rmse: 1, mase: null },
            persistenceMae: 1,
            seasonalNaiveMae: null,
            linearMae: null,
            windows: 10,
            levels: [0.8],
            intervalWidths: [widths],
          }
        : null,
    });
  return { config, forecast, db, readings, issued, job, published, issue, setNow: (ms: number) => (now = ms) };
}

describe('LiveAccuracyJob', () => {
  it('has the liveWindowDays default of 7', () => {
    assert.equal(setup().forecast.evaluation.liveWindowDays, 7);
  });

  it('scores issued forecasts against the bucket means, publishes on <baseTopic>/<forecast>/accuracy', () => {
    const { forecast, readings, job, published, issue, setNow, config } = setup();
    // Actual bucket means: [T0, +15m) → 20 (two readings 19, 21); [+15m, +30m) → 22; [+30m, +45m) → 25.
    readings.insertMany([
      { series: 'room.temp', ts: T0 + 60_000, value: 19 },
      { series: 'room.temp', ts: T0 + 120_000, value: 21 },
      { series: 'room.temp', ts: T0 + INTERVAL + 1, value: 22 },
      { series: 'room.temp', ts: T0 + 2 * INTERVAL + 1, value: 25 },
    ]);
    // Widths 1 (step 0) and 2 (step 1): forecast 1 at T0: [21 ±1] covers 20; [23 ±2] covers 22.
    job.afterTick(forecast, issue(T0, [21, 23], [1, 2]), config.forecasts);
    setNow(T0 + INTERVAL);
    // forecast 2 at T0+15m: step 0 predicts 24 ±1 (actual 22: out), step 1 predicts 25 ±2 (actual 25, not yet ended at this tick).
    job.afterTick(forecast, issue(T0 + INTERVAL, [24, 25], [1, 2]), config.forecasts);
    setNow(T0 + 3 * INTERVAL);
    const report = job.run(forecast);
    assert.equal(published.length, 3);
    assert.equal(published.at(-1)!.topic, 'forecastd/room/accuracy');
    assert.deepEqual(published.at(-1)!.report, report);
    assert.equal(report.forecast, 'room');
    assert.equal(report.windowDays, 7);
    assert.equal(report.computedAt, new Date(T0 + 3 * INTERVAL).toISOString());
    assert.equal(report.samples, 4);
    // step 0: |21-20|, |24-22| → 1.5; step 1: |23-22|, |25-25| → 0.5
    assert.deepEqual(report.steps, [
      { step: 0, count: 2, mae: 1.5, coverage: { '80': 0.5 } },
      { step: 1, count: 2, mae: 0.5, coverage: { '80': 1 } },
    ]);
    assert.equal(report.mae, 1);
    assert.deepEqual(report.coverage, { '80': 0.75 });
    // The first tick: nothing had ended yet.
    assert.equal(published[0].report.samples, 0);
    assert.equal(published[0].report.mae, null);
  });

  it('only looks liveWindowDays back, and prunes older issued forecasts', () => {
    const { forecast, readings, issued, job, issue, setNow, config } = setup(1);
    readings.insertMany([{ series: 'room.temp', ts: T0 + 1, value: 10 }]);
    job.record(issue(T0, [12]));
    setNow(T0 + INTERVAL);
    assert.equal(job.run(forecast).samples, 1);
    setNow(T0 + DAY + INTERVAL);
    assert.equal(job.run(forecast).samples, 0);
    assert.equal(issued.since('room', 0).length, 1);
    job.afterTick(forecast, null, config.forecasts);
    assert.equal(issued.since('room', 0).length, 0, 'pruned');
  });

  it('/metrics exposes the live gauges', () => {
    const { forecast, readings, job, issue, setNow } = setup();
    readings.insertMany([
      { series: 'room.temp', ts: T0 + 1, value: 10 },
      { series: 'room.temp', ts: T0 + INTERVAL + 1, value: 10 },
    ]);
    job.record(issue(T0, [12, 13], [3, 1]));
    setNow(T0 + 2 * INTERVAL);
    job.run(forecast);
    const telemetry = new Telemetry({ readingsStored: () => 0 });
    const text = renderExposition(
      collectMetrics({
        view: {
          version: 'test',
          startedAt: T0,
          backend: 'cpu',
          baseTopic: 'forecastd',
          clock: () => T0,
          brokerConnected: () => true,
          forecasts: () => [],
        },
        ingest: { received: 0, stored: 0, duplicates: 0, rejected: {} } as never,
        trainingCounters: {},
        forecastCounters: { issued: 1, skippedNoModel: 0, skippedGap: 0, checkpointsRejected: 0 },
        forecastsPublished: () => 1,
        database: () => ({ usedBytes: 0, fileBytes: 0, walBytes: 0 }),
        writtenBytes: () => null,
        tensorCount: () => 0,
        telemetry,
        homeAssistant: null,
        liveAccuracy: () => [...job.latest.values()],
      }),
    );
    const families = parseExposition(text);
    assert.equal(families.get('forecastd_live_mae')?.type, 'gauge');
    assert.equal(sampleValue(families, 'forecastd_live_mae', { forecast: 'room', step: '0' }), 2);
    assert.equal(sampleValue(families, 'forecastd_live_mae', { forecast: 'room', step: '1' }), 3);
    assert.equal(sampleValue(families, 'forecastd_live_interval_coverage', { forecast: 'room', level: '80' }), 0.5);
    assert.equal(sampleValue(families, 'forecastd_live_samples', { forecast: 'room' }), 2);
  });
});
