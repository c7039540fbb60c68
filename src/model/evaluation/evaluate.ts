/**
 * Scores the model and every baseline on exactly the same forecast origins, in original units, and
 * calibrates their prediction intervals. Pure: model predictions come in as arrays.
 */
import { linearAt, persistenceAt, seasonalNaiveAt, seasonalNaiveAvailable, type BaselineMethod, type LinearModel } from './baselines.js';
import { conformalWidths, intervalBounds, type IntervalWidths } from './conformal.js';
import { coverage, scoreForecasts, type ForecastScores } from './metrics.js';
import type { Season } from './season.js';

/** What can serve a forecast. `model` is the LSTM. */
export type ServedBy = 'model' | BaselineMethod;
/** What an evaluation scores: the new model, the serving one it challenges, and the baselines. */
export type Method = 'model' | 'champion' | BaselineMethod;
export const BASELINE_METHODS: readonly BaselineMethod[] = ['persistence', 'seasonal_naive', 'linear'];

export interface MethodEvaluation extends ForecastScores {
  /** [level][step] conformal half-widths, calibrated on the held-out windows. */
  intervalWidths: IntervalWidths;
  /** Per level: the share of actuals inside the interval on the scored windows. */
  coverage: number[];
}

/** A training's verdict on its newest held-out windows, recorded with the model version. */
export interface Evaluation {
  windows: number;
  /** Origin of the first and last scored window (epoch ms). */
  fromMs: number;
  toMs: number;
  horizon: number;
  levels: number[];
  season: Season;
  maseScale: { lag: number; mae: number } | null;
  /** The target's training std, the unit of `mseScaled`. */
  targetStd: number;
  methods: Partial<Record<Method, MethodEvaluation>>;
  linear: LinearModel | null;
  championVersion: string | null;
}

/** Actual values y[o + s] for every origin and step, [origins × horizon]. */
export function actualsAt(y: ArrayLike<number>, origins: ArrayLike<number>, horizon: number): Float64Array {
  const out = new Float64Array(origins.length * horizon);
  for (let w = 0; w < origins.length; w++) for (let s = 0; s < horizon; s++) out[w * horizon + s] = y[origins[w] + s];
  return out;
}

/**
 * Origins where every baseline can forecast (seasonal naive needs a full season of history). When the
 * season is longer than the history for more than half of them, seasonal naive is dropped instead of
 * shrinking the set: `season` in the result is then null.
 */
export function commonOrigins(
  y: ArrayLike<number>,
  origins: Int32Array,
  horizon: number,
  season: number | null,
): { origins: Int32Array; season: number | null } {
  if (season === null) return { origins, season };
  const kept = origins.filter((origin) => seasonalNaiveAvailable(y, origin, horizon, season));
  return kept.length * 2 >= origins.length && kept.length > 0 ? { origins: kept, season } : { origins, season: null };
}

/** Baseline forecasts at `origins`, [origins × horizon] each; a method is absent when it cannot forecast every origin. */
export function baselinePredictions(
  y: ArrayLike<number>,
  origins: ArrayLike<number>,
  horizon: number,
  options: { season: number | null; linear: LinearModel | null },
): Partial<Record<BaselineMethod, Float64Array>> {
  const out: Partial<Record<BaselineMethod, Float64Array>> = {};
  const run = (method: BaselineMethod, forecastAt: (origin: number, target: Float64Array, offset: number) => boolean) => {
    const predictions = new Float64Array(origins.length * horizon);
    for (let w = 0; w < origins.length; w++) if (!forecastAt(origins[w], predictions, w * horizon)) return;
    out[method] = predictions;
  };
  run('persistence', (origin, target, offset) => persistenceAt(y, origin, horizon, target, offset));
  const { season, linear } = options;
  if (season !== null) run('seasonal_naive', (origin, target, offset) => seasonalNaiveAt(y, origin, horizon, season, target, offset));
  if (linear) run('linear', (origin, target, offset) => linearAt(linear, y, origin, target, offset));
  return out;
}

/**
 * Scores each method's predictions against the same actuals. Interval widths are calibrated on these
 * windows unless `calibration` supplies them (the backtest calibrates on its validation range and
 * measures coverage on the test origins).
 */
export function scoreMethods<M extends string>(input: {
  actual: Float64Array;
  horizon: number;
  predictions: Partial<Record<M, Float64Array>>;
  levels: readonly number[];
  maseScale: number | null;
  targetStd: number | null;
  calibration?: Partial<Record<M, IntervalWidths>>;
}): Partial<Record<M, MethodEvaluation>> {
  const out: Partial<Record<M, MethodEvaluation>> = {};
  for (const [method, predicted] of Object.entries(input.predictions) as Array<[M, Float64Array | undefined]>) {
    if (!predicted) continue;
    const scores = scoreForecasts(input.actual, predicted, input.horizon, { maseScale: input.maseScale, targetStd: input.targetStd });
    const intervalWidths = input.calibration?.[method] ?? conformalWidths(input.actual, predicted, input.horizon, input.levels);
    const covered = intervalWidths.map((widths) => {
      const { lower, upper } = intervalBounds(predicted, input.horizon, widths);
      return coverage(input.actual, lower, upper, input.horizon).overall;
    });
    out[method] = { ...scores, intervalWidths, coverage: covered };
  }
  return out;
}

/** The lowest-MAE baseline of an evaluation (persistence always exists). */
export function bestBaseline(methods: Evaluation['methods']): { method: BaselineMethod; mae: number } | null {
  let best: { method: BaselineMethod; mae: number } | null = null;
  for (const method of BASELINE_METHODS) {
    const scores = methods[method];
    if (scores && (best === null || scores.mae < best.mae)) best = { method, mae: scores.mae };
  }
  return best;
}
