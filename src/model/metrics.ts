/** Forecast error measures on flat [windows × horizon] arrays in original units. Pure. */

export interface ErrorSummary {
  mae: number;
  rmse: number;
  /** Per horizon step, so users see how error grows with lead time. */
  maeByStep: number[];
}

export function errorSummary(actual: ArrayLike<number>, predicted: ArrayLike<number>, horizon: number): ErrorSummary {
  if (actual.length !== predicted.length || actual.length % horizon !== 0) {
    throw new Error(`errorSummary: ${actual.length} actuals vs ${predicted.length} predictions for horizon ${horizon}`);
  }
  const windows = actual.length / horizon;
  const absByStep = new Float64Array(horizon);
  let absSum = 0;
  let squaredSum = 0;
  for (let index = 0; index < actual.length; index++) {
    const error = predicted[index] - actual[index];
    absSum += Math.abs(error);
    squaredSum += error * error;
    absByStep[index % horizon] += Math.abs(error);
  }
  const count = Math.max(1, actual.length);
  return {
    mae: absSum / count,
    rmse: Math.sqrt(squaredSum / count),
    maeByStep: Array.from(absByStep, (sum) => sum / Math.max(1, windows)),
  };
}

/** Persistence baseline: every step of the horizon repeats the last observed value (the anchor). */
export function persistenceForecast(anchors: ArrayLike<number>, horizon: number): Float64Array {
  const out = new Float64Array(anchors.length * horizon);
  for (let window = 0; window < anchors.length; window++) out.fill(anchors[window], window * horizon, (window + 1) * horizon);
  return out;
}
