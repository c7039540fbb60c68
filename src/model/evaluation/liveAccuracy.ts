/**
 * Live accuracy: how the forecasts actually issued fared against what happened, per horizon step.
 * Pure: the caller supplies the issued forecasts and the actual bucket means (see `actualBuckets`).
 */
import { resampleMean } from '../../windowing/index.js';

export interface IssuedPoint {
  /** Start of the bucket [ts, ts + interval) the point forecasts. */
  ts: number;
  value: number;
  /** Per interval level, keyed by percent ("80", "95"). */
  lower?: Record<string, number>;
  upper?: Record<string, number>;
}

export interface IssuedForecast {
  issuedAtMs: number;
  originMs: number;
  points: IssuedPoint[];
}

export interface StepAccuracy {
  /** 0-based horizon step. */
  step: number;
  /** Points of this step with an actual value. */
  count: number;
  /** Mean absolute error; null when count is 0. */
  mae: number | null;
  /** Share of the actual values inside [lower, upper], per level present, over the points that carry that level. */
  coverage: Record<string, number>;
}

export interface LiveAccuracy {
  steps: StepAccuracy[];
  /** All steps together. */
  overall: { count: number; mae: number | null; coverage: Record<string, number> };
}

/** The mean reading of each bucket [gridStartMs + i*intervalMs, ...): a lookup by bucket start, NaN where none. */
export function actualBuckets(
  series: { timestampsMs: Float64Array; values: Float64Array },
  gridStartMs: number,
  intervalMs: number,
  bucketCount: number,
): (ts: number) => number {
  const means = resampleMean(series.timestampsMs, series.values, gridStartMs, intervalMs, Math.max(0, bucketCount));
  return (ts) => {
    const offset = (ts - gridStartMs) / intervalMs;
    return Number.isInteger(offset) && offset >= 0 && offset < means.length ? means[offset] : NaN;
  };
}

/** Scores every point whose actual value is known (finite); points without one are left out. */
export function liveAccuracy(issued: readonly IssuedForecast[], actual: (ts: number) => number): LiveAccuracy {
  interface Sums {
    count: number;
    absError: number;
    inside: Map<string, number>;
    withLevel: Map<string, number>;
  }
  const fresh = (): Sums => ({ count: 0, absError: 0, inside: new Map(), withLevel: new Map() });
  const perStep: Sums[] = [];
  const all = fresh();
  for (const forecast of issued) {
    forecast.points.forEach((point, step) => {
      const value = actual(point.ts);
      if (!Number.isFinite(value) || !Number.isFinite(point.value)) return;
      const sums = (perStep[step] ??= fresh());
      for (const target of [sums, all]) {
        target.count++;
        target.absError += Math.abs(value - point.value);
      }
      for (const [level, lower] of Object.entries(point.lower ?? {})) {
        const upper = point.upper?.[level];
        if (upper === undefined || !Number.isFinite(lower) || !Number.isFinite(upper)) continue;
        const hit = value >= lower && value <= upper ? 1 : 0;
        for (const target of [sums, all]) {
          target.withLevel.set(level, (target.withLevel.get(level) ?? 0) + 1);
          target.inside.set(level, (target.inside.get(level) ?? 0) + hit);
        }
      }
    });
  }
  const coverage = (sums: Sums) =>
    Object.fromEntries(
      [...sums.withLevel.entries()].sort(([a], [b]) => Number(a) - Number(b)).map(([level, n]) => [level, (sums.inside.get(level) ?? 0) / n]),
    );
  const steps: StepAccuracy[] = [];
  for (let step = 0; step < perStep.length; step++) {
    const sums = perStep[step] ?? fresh();
    steps.push({ step, count: sums.count, mae: sums.count > 0 ? sums.absError / sums.count : null, coverage: coverage(sums) });
  }
  return { steps, overall: { count: all.count, mae: all.count > 0 ? all.absError / all.count : null, coverage: coverage(all) } };
}
