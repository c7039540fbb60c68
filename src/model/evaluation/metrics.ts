/**
 * Forecast error measures on flat [windows × horizon] arrays in original units. Pure.
 *
 * MASE follows Hyndman & Koehler (2006): the MAE divided by the in-sample MAE of the (seasonal) naive
 * forecast on the training part, y[t] - y[t-lag], so 1 means "as wrong as repeating the last season
 * was in training" and numbers compare across series. MSE on scaled values is what the long-horizon
 * literature reports (Zeng et al. 2023): the squared error divided by the target's training variance.
 */

export interface ErrorSummary {
  mae: number;
  rmse: number;
  /** Per horizon step, so users see how error grows with lead time. */
  maeByStep: number[];
}

export interface ForecastScores extends ErrorSummary {
  /** Forecast origins (windows) scored. */
  windows: number;
  rmseByStep: number[];
  /** MAE / in-sample naive MAE; null without a scale. */
  mase: number | null;
  maseByStep: number[] | null;
  /** Mean squared error of z-scored values (the training scaler's std); null without a std. */
  mseScaled: number | null;
}

function checkShape(actual: ArrayLike<number>, predicted: ArrayLike<number>, horizon: number, what: string): void {
  if (!Number.isInteger(horizon) || horizon < 1) throw new RangeError(`${what}: horizon must be a positive integer, got ${horizon}`);
  if (actual.length !== predicted.length || actual.length % horizon !== 0) {
    throw new RangeError(`${what}: ${actual.length} actuals vs ${predicted.length} predictions for horizon ${horizon}`);
  }
}

export function errorSummary(actual: ArrayLike<number>, predicted: ArrayLike<number>, horizon: number): ErrorSummary {
  const { mae, rmse, maeByStep } = scoreForecasts(actual, predicted, horizon);
  return { mae, rmse, maeByStep };
}

export function scoreForecasts(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
  horizon: number,
  options: { maseScale?: number | null; targetStd?: number | null } = {},
): ForecastScores {
  checkShape(actual, predicted, horizon, 'scoreForecasts');
  const windows = actual.length / horizon;
  const absByStep = new Float64Array(horizon);
  const squaredByStep = new Float64Array(horizon);
  for (let index = 0; index < actual.length; index++) {
    const error = predicted[index] - actual[index];
    absByStep[index % horizon] += Math.abs(error);
    squaredByStep[index % horizon] += error * error;
  }
  const perWindow = Math.max(1, windows);
  const maeByStep = Array.from(absByStep, (sum) => sum / perWindow);
  const mseByStep = Array.from(squaredByStep, (sum) => sum / perWindow);
  const mae = mean(maeByStep);
  const mse = mean(mseByStep);
  const scale = options.maseScale;
  const usableScale = scale !== undefined && scale !== null && scale > 0 && Number.isFinite(scale);
  const std = options.targetStd;
  const usableStd = std !== undefined && std !== null && std > 0 && Number.isFinite(std);
  return {
    windows,
    mae,
    rmse: Math.sqrt(mse),
    maeByStep,
    rmseByStep: mseByStep.map(Math.sqrt),
    mase: usableScale ? mae / scale : null,
    maseByStep: usableScale ? maeByStep.map((value) => value / scale) : null,
    mseScaled: usableStd ? mse / (std * std) : null,
  };
}

/**
 * In-sample MAE of the naive forecast with `lag` (1 = persistence, m = seasonal naive) over rows
 * [fromRow, toRow) of `y`, skipping pairs with a missing value; null when no pair exists.
 */
export function naiveScale(y: ArrayLike<number>, fromRow: number, toRow: number, lag: number): number | null {
  let sum = 0;
  let count = 0;
  for (let row = Math.max(fromRow + lag, lag); row < Math.min(toRow, y.length); row++) {
    const difference = y[row] - y[row - lag];
    if (Number.isNaN(difference)) continue;
    sum += Math.abs(difference);
    count++;
  }
  return count > 0 && sum > 0 ? sum / count : null;
}

/** The MASE denominator: seasonal naive when a season fits twice into the training part, else lag 1. */
export function maseScaleFor(y: ArrayLike<number>, trainRows: number, season: number | null): { lag: number; mae: number } | null {
  if (season !== null && season >= 2 && trainRows >= 2 * season) {
    const mae = naiveScale(y, 0, trainRows, season);
    if (mae !== null) return { lag: season, mae };
  }
  const mae = naiveScale(y, 0, trainRows, 1);
  return mae === null ? null : { lag: 1, mae };
}

/** Share of actuals inside [lower, upper], per horizon step and overall. */
export function coverage(
  actual: ArrayLike<number>,
  lower: ArrayLike<number>,
  upper: ArrayLike<number>,
  horizon: number,
): { overall: number; byStep: number[] } {
  checkShape(actual, lower, horizon, 'coverage');
  checkShape(actual, upper, horizon, 'coverage');
  const insideByStep = new Float64Array(horizon);
  let inside = 0;
  for (let index = 0; index < actual.length; index++) {
    if (actual[index] >= lower[index] && actual[index] <= upper[index]) {
      inside++;
      insideByStep[index % horizon]++;
    }
  }
  const windows = Math.max(1, actual.length / horizon);
  return { overall: actual.length === 0 ? NaN : inside / actual.length, byStep: Array.from(insideByStep, (count) => count / windows) };
}

function mean(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((sum, value) => sum + value, 0) / values.length;
}
