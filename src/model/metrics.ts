/** Forecast error measures: see evaluation/metrics.ts. Kept so that existing imports keep working. */
export { errorSummary, scoreForecasts, type ErrorSummary, type ForecastScores } from './evaluation/metrics.js';

/** Persistence baseline: every step of the horizon repeats the last observed value (the anchor). */
export function persistenceForecast(anchors: ArrayLike<number>, horizon: number): Float64Array {
  const out = new Float64Array(anchors.length * horizon);
  for (let window = 0; window < anchors.length; window++) out.fill(anchors[window], window * horizon, (window + 1) * horizon);
  return out;
}
