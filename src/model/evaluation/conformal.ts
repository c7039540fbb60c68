/**
 * Split-conformal prediction intervals: the half-width for level q at horizon step s is the
 * ⌈(n+1)q⌉-th smallest absolute residual of n held-out forecasts at that step. When the held-out
 * residuals and future ones are exchangeable this covers at least q of future values; consecutive
 * windows are correlated, so treat the level as approximate and check it (the backtest reports coverage).
 */

/** [level][step] half-widths in original units. */
export type IntervalWidths = number[][];

/** The conformal quantile of already sorted absolute residuals; the largest one when n is too small for q. */
export function conformalQuantile(sortedAbsResiduals: ArrayLike<number>, level: number): number {
  const n = sortedAbsResiduals.length;
  if (n === 0) return NaN;
  // Strictly ⌈(n+1)q⌉ > n asks for an infinite interval; the largest residual is the honest finite stand-in.
  const rank = Math.min(n, Math.ceil((n + 1) * level));
  return sortedAbsResiduals[Math.max(0, rank - 1)];
}

export function conformalWidths(actual: ArrayLike<number>, predicted: ArrayLike<number>, horizon: number, levels: readonly number[]): IntervalWidths {
  if (actual.length !== predicted.length || actual.length % horizon !== 0) {
    throw new RangeError(`conformalWidths: ${actual.length} actuals vs ${predicted.length} predictions for horizon ${horizon}`);
  }
  const windows = actual.length / horizon;
  const byStep: Float64Array[] = [];
  for (let step = 0; step < horizon; step++) {
    const residuals = new Float64Array(windows);
    for (let window = 0; window < windows; window++) {
      const index = window * horizon + step;
      residuals[window] = Math.abs(actual[index] - predicted[index]);
    }
    byStep.push(residuals.sort());
  }
  return levels.map((level) => byStep.map((residuals) => conformalQuantile(residuals, level)));
}

/** point ∓ width for every [window × horizon] value. */
export function intervalBounds(
  predicted: ArrayLike<number>,
  horizon: number,
  widths: readonly number[],
): { lower: Float64Array; upper: Float64Array } {
  const lower = new Float64Array(predicted.length);
  const upper = new Float64Array(predicted.length);
  for (let index = 0; index < predicted.length; index++) {
    const width = widths[index % horizon];
    lower[index] = predicted[index] - width;
    upper[index] = predicted[index] + width;
  }
  return { lower, upper };
}

/** "0.8" → "80", "0.975" → "97.5": the key of a level in published messages. */
export function levelKey(level: number): string {
  return String(Number((level * 100).toFixed(6)));
}
