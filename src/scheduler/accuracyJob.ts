/**
 * Live accuracy: after each forecast tick, the forecasts issued over the last `evaluation.liveWindowDays` are scored
 * against the readings that came after them; the result is published retained on `<baseTopic>/<forecast>/accuracy`
 * and kept for /metrics. Issued forecasts older than the longest window are pruned.
 */
import type { IssuedForecasts, Readings } from '../store/store.js';
import type { ForecastConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { actualBuckets, liveAccuracy, type StepAccuracy } from '../model/evaluation/liveAccuracy.js';
import type { ForecastMessage } from '../publish/forecastMessage.js';
import { alignDown } from '../windowing/index.js';

const DAY_MS = 86_400_000;

export interface LiveAccuracyReport {
  forecast: string;
  computedAt: string;
  windowDays: number;
  /** Scored points, all steps together. */
  samples: number;
  mae: number | null;
  coverage: Record<string, number>;
  steps: StepAccuracy[];
}

const round = (value: number | null) => (value === null || !Number.isFinite(value) ? null : Math.round(value * 1e4) / 1e4);

export class LiveAccuracyJob {
  readonly latest = new Map<string, LiveAccuracyReport>();

  constructor(
    private readonly deps: {
      issued: IssuedForecasts;
      readings: Readings;
      clock: () => number;
      /** Hands the report to the sinks (MQTT: retained on <baseTopic>/<forecast>/accuracy). */
      publish: (report: LiveAccuracyReport) => void;
      log?: Logger;
    },
  ) {}

  /** Stores an issued forecast for later scoring. */
  record(message: ForecastMessage): void {
    this.deps.issued.record(message);
  }

  /** Scores the forecast's issued forecasts of the window, publishes and keeps the report. */
  run(forecast: ForecastConfig): LiveAccuracyReport {
    const now = this.deps.clock();
    const windowDays = forecast.evaluation.liveWindowDays;
    const intervalMs = forecast.interval * 1000;
    const issued = this.deps.issued.since(forecast.name, now - windowDays * DAY_MS);
    // Only buckets that have ended are scored: the grid runs from the first point to the last complete bucket.
    const endMs = alignDown(now, intervalMs);
    let firstTs = endMs;
    for (const entry of issued) for (const point of entry.points) if (point.ts < firstTs) firstTs = point.ts;
    const gridStartMs = alignDown(firstTs, intervalMs);
    const bucketCount = Math.max(0, Math.round((endMs - gridStartMs) / intervalMs));
    const target = this.deps.readings.read(forecast.target, gridStartMs, endMs);
    const scored = liveAccuracy(issued, actualBuckets(target, gridStartMs, intervalMs, bucketCount));
    const report: LiveAccuracyReport = {
      forecast: forecast.name,
      computedAt: new Date(now).toISOString(),
      windowDays,
      samples: scored.overall.count,
      mae: round(scored.overall.mae),
      coverage: roundAll(scored.overall.coverage),
      steps: scored.steps.map((step) => ({ step: step.step, count: step.count, mae: round(step.mae), coverage: roundAll(step.coverage) })),
    };
    this.latest.set(forecast.name, report);
    this.deps.publish(report);
    return report;
  }

  /** Removes issued forecasts older than the longest window of these forecasts. */
  prune(forecasts: readonly ForecastConfig[]): number {
    const days = Math.max(1, ...forecasts.map((forecast) => forecast.evaluation.liveWindowDays));
    return this.deps.issued.prune(this.deps.clock() - days * DAY_MS);
  }

  /** After a forecast tick: record what was issued (if anything), then score and publish; never throws. */
  afterTick(forecast: ForecastConfig, message: ForecastMessage | null, all: readonly ForecastConfig[]): void {
    try {
      if (message) this.record(message);
      this.prune(all);
      this.run(forecast);
    } catch (error) {
      this.deps.log?.warn({ forecast: forecast.name, err: (error as Error).message }, 'live accuracy could not be computed');
    }
  }
}

function roundAll(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, round(value) ?? NaN]));
}
