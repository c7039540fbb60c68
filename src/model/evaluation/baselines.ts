/**
 * The baselines every model is measured against, as pure functions on a target column `y` (original
 * units, one value per grid row, NaN where there is no value) and an origin row `o`: a forecast from
 * origin o predicts rows o, o+1, ..., o+horizon-1 from rows before o only.
 *
 * - persistence: every step repeats the last value y[o-1];
 * - seasonal naive: each step repeats the value one season earlier, y[o+s-m*(floor(s/m)+1)];
 * - linear: ridge least squares on the input window relative to its last value (NLinear, Zeng et al. 2023).
 *
 * The same functions serve the held-out evaluation of every training, the backtest and the forecasts
 * published while no model beats persistence, so a baseline is the same thing everywhere.
 */

export type BaselineMethod = 'persistence' | 'seasonal_naive' | 'linear';

/** Persistence into out[offset, offset+horizon). False when y[o-1] is missing. */
export function persistenceAt(y: ArrayLike<number>, origin: number, horizon: number, out: Float64Array, offset = 0): boolean {
  const last = origin >= 1 ? y[origin - 1] : NaN;
  if (!Number.isFinite(last)) return false;
  out.fill(last, offset, offset + horizon);
  return true;
}

/** The row a seasonal-naive forecast of step `step` (0-based) copies: the same phase of the last complete season. */
export function seasonalSourceRow(origin: number, step: number, season: number): number {
  return origin + step - season * (Math.floor(step / season) + 1);
}

/** Seasonal naive into out[offset, offset+horizon). False when any value it copies is missing or before the grid. */
export function seasonalNaiveAt(y: ArrayLike<number>, origin: number, horizon: number, season: number, out: Float64Array, offset = 0): boolean {
  for (let step = 0; step < horizon; step++) {
    const row = seasonalSourceRow(origin, step, season);
    const value = row >= 0 ? y[row] : NaN;
    if (!Number.isFinite(value)) return false;
    out[offset + step] = value;
  }
  return true;
}

/** Whether a seasonal-naive forecast exists at `origin` (every copied value present). */
export function seasonalNaiveAvailable(y: ArrayLike<number>, origin: number, horizon: number, season: number): boolean {
  for (let step = 0; step < Math.min(horizon, season); step++) {
    const row = seasonalSourceRow(origin, step, season);
    if (row < 0 || !Number.isFinite(y[row])) return false;
  }
  return true;
}

/**
 * NLinear: ŷ[o+s] = y[o-1] + scale * (bias[s] + Σ_j weights[j][s] * (y[o-1-lags+j] - y[o-1]) / scale).
 * The last input relative to itself is always 0, so it is left out: `lags` = steps - 1 (capped).
 */
export interface LinearModel {
  lags: number;
  horizon: number;
  /** Row-major [lags, horizon]. */
  weights: number[];
  bias: number[];
  /** Inputs and outputs are divided by this (the target's training std), so the ridge penalty is unit-free. */
  scale: number;
  /** The absolute penalty used (ridge × mean input variance). */
  lambda: number;
  trainWindows: number;
}

/** Beyond this many lags the normal equations (lags² per window, lags³ to solve) stop being cheap on a Pi. */
export const MAX_LINEAR_LAGS = 512;

export const linearLagsFor = (steps: number) => Math.max(1, Math.min(steps - 1, MAX_LINEAR_LAGS));

/**
 * Fits the linear baseline on the training windows at `origins` (each needs y finite on
 * [o-1-lags, o+horizon)). Origins with a missing value are skipped. Null when fewer windows than
 * inputs remain, where least squares would be meaningless.
 */
export function fitLinear(
  y: ArrayLike<number>,
  origins: ArrayLike<number>,
  options: { steps: number; horizon: number; ridge: number; scale: number },
): LinearModel | null {
  const { horizon } = options;
  const lags = linearLagsFor(options.steps);
  const scale = options.scale > 0 && Number.isFinite(options.scale) ? options.scale : 1;
  const usable: number[] = [];
  for (let w = 0; w < origins.length; w++) {
    const origin = origins[w];
    if (origin - 1 - lags < 0) continue;
    let clean = true;
    for (let row = origin - 1 - lags; row < origin + horizon && clean; row++) clean = Number.isFinite(y[row]);
    if (clean) usable.push(origin);
  }
  const n = usable.length;
  if (n <= lags) return null;

  // Means first, so the intercept is not penalised (centred ridge).
  const meanX = new Float64Array(lags);
  const meanY = new Float64Array(horizon);
  const x = new Float64Array(lags);
  const readWindow = (origin: number) => {
    const last = y[origin - 1];
    for (let j = 0; j < lags; j++) x[j] = (y[origin - 1 - lags + j] - last) / scale;
    return last;
  };
  for (const origin of usable) {
    const last = readWindow(origin);
    for (let j = 0; j < lags; j++) meanX[j] += x[j] / n;
    for (let s = 0; s < horizon; s++) meanY[s] += (y[origin + s] - last) / scale / n;
  }
  // Normal equations on centred data: A = XᵀX (lags × lags, upper triangle), B = XᵀY (lags × horizon).
  const a = new Float64Array(lags * lags);
  const b = new Float64Array(lags * horizon);
  const target = new Float64Array(horizon);
  for (const origin of usable) {
    const last = readWindow(origin);
    for (let j = 0; j < lags; j++) x[j] -= meanX[j];
    for (let s = 0; s < horizon; s++) target[s] = (y[origin + s] - last) / scale - meanY[s];
    for (let i = 0; i < lags; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * lags;
      for (let j = i; j < lags; j++) a[row + j] += xi * x[j];
      const bRow = i * horizon;
      for (let s = 0; s < horizon; s++) b[bRow + s] += xi * target[s];
    }
  }
  let trace = 0;
  for (let i = 0; i < lags; i++) trace += a[i * lags + i];
  // Relative penalty, plus a floor that keeps the always-zero direction (a constant window) solvable.
  const lambda = options.ridge * (trace / lags) + 1e-9 * Math.max(1, trace / lags);
  for (let i = 0; i < lags; i++) {
    a[i * lags + i] += lambda;
    for (let j = 0; j < i; j++) a[i * lags + j] = a[j * lags + i];
  }
  const weights = solveSymmetricPositive(a, b, lags, horizon);
  if (!weights) return null;
  const bias = new Array<number>(horizon);
  for (let s = 0; s < horizon; s++) {
    let value = meanY[s];
    for (let j = 0; j < lags; j++) value -= meanX[j] * weights[j * horizon + s];
    bias[s] = value;
  }
  return { lags, horizon, weights: Array.from(weights), bias, scale, lambda, trainWindows: n };
}

/** Linear forecast into out[offset, offset+horizon). False when an input value is missing. */
export function linearAt(model: LinearModel, y: ArrayLike<number>, origin: number, out: Float64Array, offset = 0): boolean {
  const { lags, horizon, weights, bias, scale } = model;
  if (origin - 1 - lags < 0) return false;
  const last = y[origin - 1];
  if (!Number.isFinite(last)) return false;
  for (let s = 0; s < horizon; s++) out[offset + s] = bias[s];
  for (let j = 0; j < lags; j++) {
    const value = y[origin - 1 - lags + j];
    if (!Number.isFinite(value)) return false;
    const input = (value - last) / scale;
    if (input === 0) continue;
    const row = j * horizon;
    for (let s = 0; s < horizon; s++) out[offset + s] += weights[row + s] * input;
  }
  for (let s = 0; s < horizon; s++) out[offset + s] = last + scale * out[offset + s];
  return true;
}

/**
 * Solves A X = B for a symmetric positive definite A (n × n) and B (n × m) by Cholesky, in place on
 * copies. Null when A is not positive definite (a pivot at or below 0).
 */
export function solveSymmetricPositive(aIn: Float64Array, bIn: Float64Array, n: number, m: number): Float64Array | null {
  const l = Float64Array.from(aIn);
  for (let j = 0; j < n; j++) {
    let diagonal = l[j * n + j];
    for (let k = 0; k < j; k++) diagonal -= l[j * n + k] * l[j * n + k];
    if (!(diagonal > 0)) return null;
    const pivot = Math.sqrt(diagonal);
    l[j * n + j] = pivot;
    for (let i = j + 1; i < n; i++) {
      let value = l[i * n + j];
      for (let k = 0; k < j; k++) value -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = value / pivot;
    }
  }
  const x = Float64Array.from(bIn);
  // Forward: L Z = B, then back: Lᵀ X = Z, column by column of B.
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let value = x[i * m + c];
      for (let k = 0; k < i; k++) value -= l[i * n + k] * x[k * m + c];
      x[i * m + c] = value / l[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let value = x[i * m + c];
      for (let k = i + 1; k < n; k++) value -= l[k * n + i] * x[k * m + c];
      x[i * m + c] = value / l[i * n + i];
    }
  }
  return x;
}
